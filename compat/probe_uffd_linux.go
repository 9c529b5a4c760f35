package compat

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// userfaultfd and PAGEMAP_SCAN, from include/uapi/linux/userfaultfd.h and
// include/uapi/linux/fs.h (Linux 6.7). x/sys has no definitions for them.
const (
	uffdUserModeOnly = 1 // UFFD_USER_MODE_ONLY

	uffdAPI              = 0xAA    // UFFD_API
	uffdFeatureWPAsync   = 1 << 15 // UFFD_FEATURE_WP_ASYNC
	uffdioRegisterModeWP = 1 << 1  // UFFDIO_REGISTER_MODE_WP
	uffdioWriteProtectWP = 1 << 0  // UFFDIO_WRITEPROTECT_MODE_WP

	pageIsWritten = 1 << 1 // PAGE_IS_WRITTEN
)

type uffdioAPI struct{ API, Features, Ioctls uint64 }

type uffdioRange struct{ Start, Len uint64 }

type uffdioRegister struct {
	Range  uffdioRange
	Mode   uint64
	Ioctls uint64
}

type uffdioWriteprotect struct {
	Range uffdioRange
	Mode  uint64
}

type pmScanArg struct {
	Size, Flags, Start, End, WalkEnd, Vec, VecLen, MaxPages uint64
	CategoryInverted, CategoryMask, CategoryAnyofMask       uint64
	ReturnMask                                              uint64
}

type pageRegion struct{ Start, End, Categories uint64 }

var (
	ioctlUffdioAPI          = iowr(0xAA, 0x3F, unsafe.Sizeof(uffdioAPI{}))
	ioctlUffdioRegister     = iowr(0xAA, 0x00, unsafe.Sizeof(uffdioRegister{}))
	ioctlUffdioWriteprotect = iowr(0xAA, 0x06, unsafe.Sizeof(uffdioWriteprotect{}))
	ioctlPagemapScan        = iowr('f', 16, unsafe.Sizeof(pmScanArg{}))
)

func ioctlPtr(fd int, req uintptr, arg unsafe.Pointer) (uintptr, error) {
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if e != 0 {
		return 0, e
	}
	return r, nil
}

// probeUffdWP arms userfaultfd async write-protect on one page of this
// process, then checks with PAGEMAP_SCAN that the page reads clean after
// protecting it and written after a store: the whole mechanism the uffd-wp
// dirty tracker relies on.
func probeUffdWP(pageSize int) error {
	fd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK|uffdUserModeOnly, 0, 0)
	if e != 0 {
		return fmt.Errorf("userfaultfd: %w", e)
	}
	uffd := int(fd)
	defer unix.Close(uffd)

	api := uffdioAPI{API: uffdAPI, Features: uffdFeatureWPAsync}
	if _, err := ioctlPtr(uffd, ioctlUffdioAPI, unsafe.Pointer(&api)); err != nil {
		return fmt.Errorf("UFFDIO_API with UFFD_FEATURE_WP_ASYNC: %w", err)
	}
	mem, err := unix.Mmap(-1, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	defer unix.Munmap(mem)
	mem[0] = 1
	start := uint64(uintptr(unsafe.Pointer(&mem[0])))
	rng := uffdioRange{Start: start, Len: uint64(pageSize)}

	reg := uffdioRegister{Range: rng, Mode: uffdioRegisterModeWP}
	if _, err := ioctlPtr(uffd, ioctlUffdioRegister, unsafe.Pointer(&reg)); err != nil {
		return fmt.Errorf("UFFDIO_REGISTER MODE_WP: %w", err)
	}
	wp := uffdioWriteprotect{Range: rng, Mode: uffdioWriteProtectWP}
	if _, err := ioctlPtr(uffd, ioctlUffdioWriteprotect, unsafe.Pointer(&wp)); err != nil {
		return fmt.Errorf("UFFDIO_WRITEPROTECT: %w", err)
	}

	pm, err := unix.Open("/proc/self/pagemap", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open pagemap: %w", err)
	}
	defer unix.Close(pm)
	scan := func() (int, error) {
		var regions [4]pageRegion
		arg := pmScanArg{
			Size: uint64(unsafe.Sizeof(pmScanArg{})), Start: start, End: start + uint64(pageSize),
			Vec: uint64(uintptr(unsafe.Pointer(&regions[0]))), VecLen: uint64(len(regions)),
			CategoryMask: pageIsWritten, ReturnMask: pageIsWritten,
		}
		n, err := ioctlPtr(pm, ioctlPagemapScan, unsafe.Pointer(&arg))
		if err != nil {
			return 0, fmt.Errorf("PAGEMAP_SCAN: %w", err)
		}
		return int(n), nil
	}
	if n, err := scan(); err != nil {
		return err
	} else if n != 0 {
		return fmt.Errorf("PAGEMAP_SCAN reports a write-protected page as written")
	}
	mem[0] = 2
	if n, err := scan(); err != nil {
		return err
	} else if n != 1 {
		return fmt.Errorf("PAGEMAP_SCAN misses a write to a write-protected page (%d regions)", n)
	}
	return nil
}
