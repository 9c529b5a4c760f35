package precopy

import "unsafe"

// userfaultfd, from include/uapi/linux/userfaultfd.h (Linux 6.18). x/sys
// has none of it. All fields are __u64, so the layouts are the same on every
// 64-bit host.
const (
	uffdAPI    = 0xAA // UFFD_API
	uffdioType = 0xAA // UFFDIO

	uffdioRegisterNr     = 0x00 // _UFFDIO_REGISTER
	uffdioUnregisterNr   = 0x01 // _UFFDIO_UNREGISTER
	uffdioWriteprotectNr = 0x06 // _UFFDIO_WRITEPROTECT
	uffdioAPINr          = 0x3F // _UFFDIO_API

	uffdUserModeOnly = 1 // UFFD_USER_MODE_ONLY (userfaultfd(2) flag)

	uffdFeatureWPHugetlbfsShmem = 1 << 12 // UFFD_FEATURE_WP_HUGETLBFS_SHMEM
	uffdFeatureWPUnpopulated    = 1 << 13 // UFFD_FEATURE_WP_UNPOPULATED
	uffdFeatureWPAsync          = 1 << 15 // UFFD_FEATURE_WP_ASYNC

	uffdioRegisterModeWP     = 1 << 1 // UFFDIO_REGISTER_MODE_WP
	uffdioWriteprotectModeWP = 1 << 0 // UFFDIO_WRITEPROTECT_MODE_WP
)

// struct uffdio_api
type uffdioAPI struct {
	API      uint64
	Features uint64
	Ioctls   uint64
}

// struct uffdio_range
type uffdioRange struct {
	Start uint64
	Len   uint64
}

// struct uffdio_register
type uffdioRegister struct {
	Range  uffdioRange
	Mode   uint64
	Ioctls uint64
}

// struct uffdio_writeprotect
type uffdioWriteprotect struct {
	Range uffdioRange
	Mode  uint64
}

// PAGEMAP_SCAN, from include/uapi/linux/fs.h (Linux 6.7 and later).
const (
	pagemapScanType = 'f'
	pagemapScanNr   = 16

	pageIsWPAllowed = 1 << 0 // PAGE_IS_WPALLOWED
	pageIsWritten   = 1 << 1 // PAGE_IS_WRITTEN
	pageIsFile      = 1 << 2 // PAGE_IS_FILE
	pageIsPresent   = 1 << 3 // PAGE_IS_PRESENT
	pageIsSwapped   = 1 << 4 // PAGE_IS_SWAPPED

	pmScanWPMatching   = 1 << 0 // PM_SCAN_WP_MATCHING
	pmScanCheckWPAsync = 1 << 1 // PM_SCAN_CHECK_WPASYNC
)

// struct page_region
type pageRegion struct {
	Start      uint64
	End        uint64
	Categories uint64
}

// struct pm_scan_arg
type pmScanArg struct {
	Size              uint64
	Flags             uint64
	Start             uint64
	End               uint64
	WalkEnd           uint64
	Vec               uint64
	VecLen            uint64
	MaxPages          uint64
	CategoryInverted  uint64
	CategoryMask      uint64
	CategoryAnyofMask uint64
	ReturnMask        uint64
}

// Request numbers, per the host's _IOC encoding.
var (
	uffdioAPIReq          = hostIOC.iowr(uffdioType, uffdioAPINr, unsafe.Sizeof(uffdioAPI{}))
	uffdioRegisterReq     = hostIOC.iowr(uffdioType, uffdioRegisterNr, unsafe.Sizeof(uffdioRegister{}))
	uffdioUnregisterReq   = hostIOC.ior(uffdioType, uffdioUnregisterNr, unsafe.Sizeof(uffdioRange{}))
	uffdioWriteprotectReq = hostIOC.iowr(uffdioType, uffdioWriteprotectNr, unsafe.Sizeof(uffdioWriteprotect{}))
	pagemapScanReq        = hostIOC.iowr(pagemapScanType, pagemapScanNr, unsafe.Sizeof(pmScanArg{}))
)
