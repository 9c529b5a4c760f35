package inject

import (
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

func uintptrOf(p *uint64) uintptr { return uintptr(unsafe.Pointer(p)) }

// MaxIovecs is the most iovecs one process_vm_readv/writev takes (UIO_MAXIOV).
const MaxIovecs = 1024

// NoCrossMemoryEnv, set to 1 in the environment, makes this process reach
// task memory through /proc/PID/mem only, as on a kernel built without
// CONFIG_CROSS_MEMORY_ATTACH (no process_vm_readv/writev): the tests run
// that path on kernels that have both.
const NoCrossMemoryEnv = "MIGRATED_NO_CROSS_MEMORY"

// CrossMemoryAttach tells whether process_vm_readv/writev may be used (see
// NoCrossMemoryEnv). A kernel without them answers ENOSYS, and the callers
// fall back then too.
var CrossMemoryAttach = sync.OnceValue(func() bool { return os.Getenv(NoCrossMemoryEnv) != "1" })

// ProcessVMWritev is unix.ProcessVMWritev, or ENOSYS where CrossMemoryAttach
// says no: callers handle both the same way.
func ProcessVMWritev(pid int, local []unix.Iovec, remote []unix.RemoteIovec) (int, error) {
	if !CrossMemoryAttach() {
		return 0, unix.ENOSYS
	}
	return unix.ProcessVMWritev(pid, local, remote, 0)
}

// processVMReadv is the same for process_vm_readv.
func processVMReadv(pid int, local []unix.Iovec, remote []unix.RemoteIovec) (int, error) {
	if !CrossMemoryAttach() {
		return 0, unix.ENOSYS
	}
	return unix.ProcessVMReadv(pid, local, remote, 0)
}

// ReadMem copies len(buf) bytes at addr of pid into buf with
// process_vm_readv (through /proc/PID/mem on a kernel built without
// CONFIG_CROSS_MEMORY_ATTACH, which has no process_vm_*). It does not need
// the tracer thread.
func ReadMem(pid int, addr uint64, buf []byte) error {
	if !CrossMemoryAttach() {
		return ReadMemForce(pid, addr, buf)
	}
	for done := 0; done < len(buf); {
		local := []unix.Iovec{{Base: &buf[done]}}
		local[0].SetLen(len(buf) - done)
		remote := []unix.RemoteIovec{{Base: uintptr(addr) + uintptr(done), Len: len(buf) - done}}
		n, err := unix.ProcessVMReadv(pid, local, remote, 0)
		if err == unix.ENOSYS {
			return ReadMemForce(pid, addr+uint64(done), buf[done:])
		}
		if err != nil {
			return fmt.Errorf("read %d bytes at %#x of %d: %w", len(buf)-done, addr+uint64(done), pid, err)
		}
		if n == 0 {
			return fmt.Errorf("read at %#x of %d: no progress", addr+uint64(done), pid)
		}
		done += n
	}
	return nil
}

// WriteMem copies buf to addr of pid with process_vm_writev (the target
// range must be writable).
func WriteMem(pid int, addr uint64, buf []byte) error {
	if !CrossMemoryAttach() {
		return WriteMemForce(pid, addr, buf)
	}
	for done := 0; done < len(buf); {
		local := []unix.Iovec{{Base: &buf[done]}}
		local[0].SetLen(len(buf) - done)
		remote := []unix.RemoteIovec{{Base: uintptr(addr) + uintptr(done), Len: len(buf) - done}}
		n, err := unix.ProcessVMWritev(pid, local, remote, 0)
		if err == unix.ENOSYS {
			return WriteMemForce(pid, addr+uint64(done), buf[done:])
		}
		if err != nil {
			return fmt.Errorf("write %d bytes at %#x of %d: %w", len(buf)-done, addr+uint64(done), pid, err)
		}
		if n == 0 {
			return fmt.Errorf("write at %#x of %d: no progress", addr+uint64(done), pid)
		}
		done += n
	}
	return nil
}

// ReadMemForce reads through /proc/PID/mem, which (with ptrace access) also
// reads mappings that are not readable (PROT_NONE ranges).
func ReadMemForce(pid int, addr uint64, buf []byte) error {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.ReadAt(buf, int64(addr)); err != nil {
		return fmt.Errorf("read %d bytes at %#x of /proc/%d/mem: %w", len(buf), addr, pid, err)
	}
	return nil
}

// WriteMemForce writes through /proc/PID/mem (also into read-only mappings).
func WriteMemForce(pid int, addr uint64, buf []byte) error {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(buf, int64(addr)); err != nil {
		return fmt.Errorf("write %d bytes at %#x of /proc/%d/mem: %w", len(buf), addr, pid, err)
	}
	return nil
}

// ReadPages reads whole pages at the given page-aligned addresses (ascending)
// into buf (len(addrs)*pageSize bytes) with as few process_vm_readv calls as
// possible: contiguous pages merge into one iovec, up to MaxIovecs a call.
func ReadPages(pid int, addrs []uint64, pageSize uint64, buf []byte) error {
	if uint64(len(buf)) < uint64(len(addrs))*pageSize {
		return fmt.Errorf("read pages: buffer of %d bytes for %d pages", len(buf), len(addrs))
	}
	var remote []unix.RemoteIovec
	flush := func(bufOff uint64, first int, n int) error {
		if len(remote) == 0 {
			return nil
		}
		local := []unix.Iovec{{Base: &buf[bufOff]}}
		local[0].SetLen(n * int(pageSize))
		got, err := processVMReadv(pid, local, remote)
		if err == unix.ENOSYS {
			// A kernel without CONFIG_CROSS_MEMORY_ATTACH: /proc/PID/mem,
			// one range at a time.
			off := bufOff
			for _, r := range remote {
				if err := ReadMemForce(pid, uint64(r.Base), buf[off:off+uint64(r.Len)]); err != nil {
					return err
				}
				off += uint64(r.Len)
			}
			remote = remote[:0]
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %d pages at %#x of %d: %w", n, addrs[first], pid, err)
		}
		if got != n*int(pageSize) {
			return fmt.Errorf("read %d pages at %#x of %d: short read of %d bytes", n, addrs[first], pid, got)
		}
		remote = remote[:0]
		return nil
	}
	start, count := 0, 0
	for i, a := range addrs {
		if len(remote) > 0 && remote[len(remote)-1].Base+uintptr(remote[len(remote)-1].Len) == uintptr(a) {
			remote[len(remote)-1].Len += int(pageSize)
		} else {
			if len(remote) == MaxIovecs {
				if err := flush(uint64(start)*pageSize, start, count); err != nil {
					return err
				}
				start, count = i, 0
			}
			remote = append(remote, unix.RemoteIovec{Base: uintptr(a), Len: int(pageSize)})
		}
		count++
	}
	return flush(uint64(start)*pageSize, start, count)
}
