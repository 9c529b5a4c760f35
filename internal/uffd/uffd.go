// Package uffd is the kernel ABI of userfaultfd(2) and of the PAGEMAP_SCAN
// ioctl of /proc/PID/pagemap, which x/sys does not define, and the few
// calls around them that several packages make: the pre-copy tracker
// (write-protect) and the capability probe.
//
// The values come from include/uapi/linux/userfaultfd.h and
// include/uapi/linux/fs.h (Linux 6.18). Every field is a __u64 or __s64, so
// the layouts are the same on every 64-bit host. The ioctls are issued by
// this process, so their request numbers use this host's encoding, not the
// task's.
package uffd

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// userfaultfd(2) flag, API version and features.
const (
	API          = 0xAA // UFFD_API
	UserModeOnly = 1    // UFFD_USER_MODE_ONLY (userfaultfd(2) flag)

	FeatureWPHugetlbfsShmem = 1 << 12 // UFFD_FEATURE_WP_HUGETLBFS_SHMEM
	FeatureWPUnpopulated    = 1 << 13 // UFFD_FEATURE_WP_UNPOPULATED
	FeatureWPAsync          = 1 << 15 // UFFD_FEATURE_WP_ASYNC

	RegisterModeWP     = 1 << 1 // UFFDIO_REGISTER_MODE_WP
	WriteprotectModeWP = 1 << 0 // UFFDIO_WRITEPROTECT_MODE_WP
)

const (
	ioctlType      = 0xAA // UFFDIO
	registerNr     = 0x00 // _UFFDIO_REGISTER
	unregisterNr   = 0x01 // _UFFDIO_UNREGISTER
	writeprotectNr = 0x06 // _UFFDIO_WRITEPROTECT
	apiNr          = 0x3F // _UFFDIO_API

	pagemapScanType = 'f'
	pagemapScanNr   = 16
)

// APIArgs is struct uffdio_api.
type APIArgs struct {
	API      uint64
	Features uint64
	Ioctls   uint64
}

// Range is struct uffdio_range.
type Range struct {
	Start uint64
	Len   uint64
}

// RegisterArgs is struct uffdio_register.
type RegisterArgs struct {
	Range  Range
	Mode   uint64
	Ioctls uint64
}

// WriteprotectArgs is struct uffdio_writeprotect.
type WriteprotectArgs struct {
	Range Range
	Mode  uint64
}

// PAGEMAP_SCAN (Linux 6.7 and later) categories and flags.
const (
	PageIsWPAllowed = 1 << 0 // PAGE_IS_WPALLOWED
	PageIsWritten   = 1 << 1 // PAGE_IS_WRITTEN
	PageIsFile      = 1 << 2 // PAGE_IS_FILE
	PageIsPresent   = 1 << 3 // PAGE_IS_PRESENT
	PageIsSwapped   = 1 << 4 // PAGE_IS_SWAPPED

	ScanWPMatching   = 1 << 0 // PM_SCAN_WP_MATCHING
	ScanCheckWPAsync = 1 << 1 // PM_SCAN_CHECK_WPASYNC
)

// PageRegion is struct page_region.
type PageRegion struct {
	Start      uint64
	End        uint64
	Categories uint64
}

// ScanArgs is struct pm_scan_arg.
type ScanArgs struct {
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

// Request numbers, in this host's _IOC encoding.
var (
	ReqAPI          = HostIOC.IOWR(ioctlType, apiNr, unsafe.Sizeof(APIArgs{}))
	ReqRegister     = HostIOC.IOWR(ioctlType, registerNr, unsafe.Sizeof(RegisterArgs{}))
	ReqUnregister   = HostIOC.IOR(ioctlType, unregisterNr, unsafe.Sizeof(Range{}))
	ReqWriteprotect = HostIOC.IOWR(ioctlType, writeprotectNr, unsafe.Sizeof(WriteprotectArgs{}))
	ReqPagemapScan  = HostIOC.IOWR(pagemapScanType, pagemapScanNr, unsafe.Sizeof(ScanArgs{}))
)

// Ioctl issues req on fd with arg and returns the call's result.
func Ioctl(fd int, req uintptr, arg unsafe.Pointer) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// OpenSelf opens a userfaultfd of this process, close-on-exec and
// non-blocking: user-mode faults only where the kernel knows the flag
// (5.11), plain before. Use it to ask what the kernel supports.
func OpenSelf() (int, error) {
	var err error
	for _, extra := range []uintptr{UserModeOnly, 0} {
		r, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK|extra, 0, 0)
		if e == 0 {
			return int(r), nil
		}
		err = e
		if e != unix.EINVAL {
			break
		}
	}
	return -1, fmt.Errorf("userfaultfd: %w", err)
}

// GetFD copies descriptor targetFD of process pid into this process
// (pidfd_getfd(2), Linux 5.6; the caller needs ptrace access to pid).
func GetFD(pid, targetFD int) (int, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	fd, err := unix.PidfdGetfd(pidfd, targetFD, 0)
	if err != nil {
		return -1, fmt.Errorf("pidfd_getfd fd %d of %d: %w", targetFD, pid, err)
	}
	return fd, nil
}

// ErrCloseInTask: the userfaultfd CreateIn made could not be closed in the
// task, which may still hold it.
var ErrCloseInTask = errors.New("cannot close the userfaultfd in the task")

// Caller runs a system call inside a task (an injector's Call).
type Caller func(name string, nr int, args ...uint64) (uint64, error)

// CreateIn creates a userfaultfd of task pid's mm by running userfaultfd(2)
// inside the task through call, copies it here, and closes it in the task,
// which must not keep it. nrUserfaultfd and nrClose are the task's system
// call numbers.
//
// Flags: O_CLOEXEC|O_NONBLOCK (the same values on x86 and powerpc,
// include/uapi/asm-generic/fcntl.h, whatever the task's bitness), and
// UFFD_USER_MODE_ONLY first. That flag makes userfaultfd(2) allowed for any
// task even with vm.unprivileged_userfaultfd=0 (the call runs with the
// task's credentials, not ours); it only limits which faults go to a
// reader (handle_userfault). Without it the call needs CAP_SYS_PTRACE in the task (or the
// sysctl), so it is the fallback for kernels before 5.11 that reject the
// flag with EINVAL.
func CreateIn(pid int, call Caller, nrUserfaultfd, nrClose int) (int, error) {
	flags := uint64(unix.O_CLOEXEC | unix.O_NONBLOCK)
	var tfd uint64
	var err error
	for _, extra := range []uint64{UserModeOnly, 0} {
		tfd, err = call("userfaultfd", nrUserfaultfd, flags|extra)
		if errors.Is(err, unix.EINVAL) && extra != 0 {
			continue
		}
		break
	}
	if err != nil {
		return -1, fmt.Errorf("userfaultfd in task %d: %w", pid, err)
	}
	fd, getErr := GetFD(pid, int(tfd))
	// Close it in the task whatever happened.
	if _, cerr := call("close", nrClose, tfd); cerr != nil {
		if getErr == nil {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("%w: fd %d in task %d: %w", ErrCloseInTask, tfd, pid, cerr)
	}
	if getErr != nil {
		return -1, getErr
	}
	return fd, nil
}
