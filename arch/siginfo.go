package arch

import "fmt"

// SiginfoSize is sizeof(siginfo_t), and of the compat siginfo: 128 bytes.
const SiginfoSize = 128

// si_code values and signal numbers siginfo layouts depend on
// (include/uapi/asm-generic/siginfo.h, signal.h).
const (
	siUser   = 0
	siKernel = 0x80
	siTimer  = -2
	siSigio  = -5

	sigILL  = 4
	sigTRAP = 5
	sigBUS  = 7
	sigFPE  = 8
	sigSEGV = 11
	sigCHLD = 17
	sigPOLL = 29
	sigSYS  = 31
)

// siginfo union layouts, as the kernel's siginfo_layout() (kernel/signal.c)
// chooses them.
type silLayout int

const (
	silKill  silLayout = iota // pid, uid
	silTimer                  // tid, overrun, sigval
	silPoll                   // band (long), fd
	silFault                  // addr (pointer), then arch-specific fields
	silChld                   // pid, uid, status, utime, stime (clock_t: long)
	silRT                     // pid, uid, sigval
	silSys                    // call_addr (pointer), syscall, arch
)

func siginfoLayout(sig int32, code int32) silLayout {
	if code > siUser && code < siKernel {
		switch sig {
		case sigILL, sigFPE, sigSEGV, sigBUS, sigTRAP:
			return silFault
		case sigCHLD:
			return silChld
		case sigPOLL:
			return silPoll
		case sigSYS:
			return silSys
		}
		return silPoll
	}
	switch {
	case code == siTimer:
		return silTimer
	case code == siSigio:
		return silPoll
	case code < 0:
		return silRT
	}
	return silKill
}

// SiginfoForTask lays out a siginfo_t that a 64-bit tracer read
// (PTRACE_PEEKSIGINFO: the native 64-bit layout, in the task's byte order)
// for rt_sigqueueinfo in a task of arch a: unchanged for 64-bit tasks, the
// compat layout (include/linux/compat.h, struct compat_siginfo; the kernel's
// copy_siginfo_to_user32) for 32-bit ones, whose union starts at offset 12
// instead of 16 and whose longs and pointers are 4 bytes.
func SiginfoForTask(a Arch, raw []byte) ([]byte, error) {
	if len(raw) != SiginfoSize {
		return nil, fmt.Errorf("siginfo of %d bytes, want %d", len(raw), SiginfoSize)
	}
	if a.WordSize() == 8 {
		return append([]byte(nil), raw...), nil
	}
	o := a.ByteOrder()
	out := make([]byte, SiginfoSize)
	copy(out[:12], raw[:12]) // si_signo, si_errno, si_code
	sig, code := int32(o.Uint32(raw[0:])), int32(o.Uint32(raw[8:]))
	u, cu := raw[16:], out[12:] // the unions
	u32 := func(from, to int) { o.PutUint32(cu[to:], o.Uint32(u[from:])) }
	// A long or pointer of the 64-bit layout, truncated to the task's 32
	// bits (it came from the 32-bit task, so nothing is lost).
	long := func(from, to int) { o.PutUint32(cu[to:], uint32(o.Uint64(u[from:]))) }
	switch siginfoLayout(sig, code) {
	case silKill:
		u32(0, 0)
		u32(4, 4)
	case silTimer:
		u32(0, 0)
		u32(4, 4)
		u32(8, 8) // sigval: its sival_int (see silRT)
	case silPoll:
		long(0, 0) // band
		u32(8, 4)  // fd
	case silFault:
		long(0, 0) // addr; the arch-specific fields that follow are dropped
	case silChld:
		u32(0, 0)
		u32(4, 4)
		u32(8, 8)    // status
		long(16, 12) // utime
		long(24, 16) // stime
	case silRT:
		u32(0, 0)
		u32(4, 4)
		// sigval: the kernel carries a 32-bit task's value as the
		// sival_int of the 64-bit union, its first four bytes (the high
		// half of sival_ptr on a big-endian kernel), and gives the task
		// that int back (copy_siginfo_to_user32): copy those bytes, not
		// the pointer's low half.
		u32(8, 8)
	case silSys:
		long(0, 0) // call_addr
		u32(8, 4)  // syscall
		u32(12, 8) // arch
	}
	return out, nil
}
