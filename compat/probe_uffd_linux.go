package compat

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/internal/uffd"
)

// probeUffdWP arms userfaultfd async write-protect on one page of this
// process, then checks with PAGEMAP_SCAN that the page reads clean after
// protecting it and written after a store: the whole mechanism the uffd-wp
// dirty tracker relies on.
func probeUffdWP(pageSize int) error {
	fd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK|uffd.UserModeOnly, 0, 0)
	if e != 0 {
		return fmt.Errorf("userfaultfd: %w", e)
	}
	ufd := int(fd)
	defer unix.Close(ufd)

	api := uffd.APIArgs{API: uffd.API, Features: uffd.FeatureWPAsync}
	if _, err := uffd.Ioctl(ufd, uffd.ReqAPI, unsafe.Pointer(&api)); err != nil {
		return fmt.Errorf("UFFDIO_API with UFFD_FEATURE_WP_ASYNC: %w", err)
	}
	mem, err := unix.Mmap(-1, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	defer unix.Munmap(mem)
	mem[0] = 1
	start := uint64(uintptr(unsafe.Pointer(&mem[0])))
	rng := uffd.Range{Start: start, Len: uint64(pageSize)}

	reg := uffd.RegisterArgs{Range: rng, Mode: uffd.RegisterModeWP}
	if _, err := uffd.Ioctl(ufd, uffd.ReqRegister, unsafe.Pointer(&reg)); err != nil {
		return fmt.Errorf("UFFDIO_REGISTER MODE_WP: %w", err)
	}
	wp := uffd.WriteprotectArgs{Range: rng, Mode: uffd.WriteprotectModeWP}
	if _, err := uffd.Ioctl(ufd, uffd.ReqWriteprotect, unsafe.Pointer(&wp)); err != nil {
		return fmt.Errorf("UFFDIO_WRITEPROTECT: %w", err)
	}

	pm, err := unix.Open("/proc/self/pagemap", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open pagemap: %w", err)
	}
	defer unix.Close(pm)
	scan := func() (int, error) {
		var regions [4]uffd.PageRegion
		arg := uffd.ScanArgs{
			Size: uint64(unsafe.Sizeof(uffd.ScanArgs{})), Start: start, End: start + uint64(pageSize),
			Vec: uint64(uintptr(unsafe.Pointer(&regions[0]))), VecLen: uint64(len(regions)),
			CategoryMask: uffd.PageIsWritten, ReturnMask: uffd.PageIsWritten,
		}
		n, err := uffd.Ioctl(pm, uffd.ReqPagemapScan, unsafe.Pointer(&arg))
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
