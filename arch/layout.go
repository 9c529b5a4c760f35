package arch

import "fmt"

// Kernel structures the engine passes to injected system calls, laid out for
// a task of arch a. On every arch here they are built from "long"-sized
// words in the task's byte order, so the word size and byte order decide
// the layout; 32-bit tasks get the compat layouts
// (include/linux/compat.h, arch/x86/include/asm/ia32.h,
// arch/powerpc/kernel/ppc32.h).

// SigactionSize is the size of the kernel's struct sigaction for rt_sigaction
// with an 8-byte sigset: handler, flags, restorer (one word each), mask (8 bytes).
func SigactionSize(a Arch) int { return 3*a.WordSize() + 8 }

// Sigaction is the kernel's view of one signal handler.
type Sigaction struct {
	Handler, Flags, Restorer, Mask uint64
}

func putWord(a Arch, b []byte, v uint64) {
	if a.WordSize() == 8 {
		a.ByteOrder().PutUint64(b, v)
	} else {
		a.ByteOrder().PutUint32(b, uint32(v))
	}
}

func word(a Arch, b []byte) uint64 {
	if a.WordSize() == 8 {
		return a.ByteOrder().Uint64(b)
	}
	return uint64(a.ByteOrder().Uint32(b))
}

// putSigset writes a 64-signal set: one u64 on 64-bit tasks, two u32 words
// (signals 1-32 first) in compat layouts.
func putSigset(a Arch, b []byte, m uint64) {
	if a.WordSize() == 8 {
		a.ByteOrder().PutUint64(b, m)
		return
	}
	a.ByteOrder().PutUint32(b, uint32(m))
	a.ByteOrder().PutUint32(b[4:], uint32(m>>32))
}

func sigset(a Arch, b []byte) uint64 {
	if a.WordSize() == 8 {
		return a.ByteOrder().Uint64(b)
	}
	return uint64(a.ByteOrder().Uint32(b)) | uint64(a.ByteOrder().Uint32(b[4:]))<<32
}

// EncodeSigaction lays out s for rt_sigaction.
func EncodeSigaction(a Arch, s Sigaction) []byte {
	w := a.WordSize()
	b := make([]byte, SigactionSize(a))
	putWord(a, b[0:], s.Handler)
	putWord(a, b[w:], s.Flags)
	putWord(a, b[2*w:], s.Restorer)
	putSigset(a, b[3*w:], s.Mask)
	return b
}

// DecodeSigaction reads what rt_sigaction wrote.
func DecodeSigaction(a Arch, b []byte) (Sigaction, error) {
	if len(b) < SigactionSize(a) {
		return Sigaction{}, fmt.Errorf("sigaction of %d bytes, want %d", len(b), SigactionSize(a))
	}
	w := a.WordSize()
	return Sigaction{Handler: word(a, b), Flags: word(a, b[w:]), Restorer: word(a, b[2*w:]), Mask: sigset(a, b[3*w:])}, nil
}

// StackSize is sizeof(stack_t): { void *ss_sp; int ss_flags; size_t ss_size; }.
func StackSize(a Arch) int { return 3 * a.WordSize() }

// EncodeStack lays out a stack_t for sigaltstack.
func EncodeStack(a Arch, sp uint64, flags uint32, size uint64) []byte {
	w := a.WordSize()
	b := make([]byte, StackSize(a))
	putWord(a, b, sp)
	a.ByteOrder().PutUint32(b[w:], flags) // an int, at the start of its word slot
	putWord(a, b[2*w:], size)
	return b
}

// DecodeStack reads a stack_t.
func DecodeStack(a Arch, b []byte) (sp uint64, flags uint32, size uint64, err error) {
	if len(b) < StackSize(a) {
		return 0, 0, 0, fmt.Errorf("stack_t of %d bytes, want %d", len(b), StackSize(a))
	}
	w := a.WordSize()
	return word(a, b), a.ByteOrder().Uint32(b[w:]), word(a, b[2*w:]), nil
}

// ITimervalSize is sizeof(struct itimerval): two timevals of two longs.
func ITimervalSize(a Arch) int { return 4 * a.WordSize() }

// EncodeITimerval lays out an itimerval from nanoseconds.
func EncodeITimerval(a Arch, intervalNS, valueNS int64) []byte {
	return encodeTimerPair(a, intervalNS, valueNS, 1e3)
}

// DecodeITimerval reads an itimerval into nanoseconds.
func DecodeITimerval(a Arch, b []byte) (intervalNS, valueNS int64, err error) {
	return decodeTimerPair(a, b, 1e3, "itimerval")
}

// ITimerspecSize is the size of the struct itimerspec timer_settime and
// timer_gettime take: two timespecs of two words (a 32-bit task's calls
// are the ones with a 32-bit time_t).
func ITimerspecSize(a Arch) int { return 4 * a.WordSize() }

// EncodeITimerspec lays out an itimerspec from nanoseconds.
func EncodeITimerspec(a Arch, intervalNS, valueNS int64) []byte {
	return encodeTimerPair(a, intervalNS, valueNS, 1)
}

// DecodeITimerspec reads an itimerspec into nanoseconds.
func DecodeITimerspec(a Arch, b []byte) (intervalNS, valueNS int64, err error) {
	return decodeTimerPair(a, b, 1, "itimerspec")
}

// encodeTimerPair lays out {interval, value}, each {seconds, sub} in words,
// sub in units of unit nanoseconds (µs: itimerval, ns: itimerspec).
func encodeTimerPair(a Arch, intervalNS, valueNS, unit int64) []byte {
	w := a.WordSize()
	b := make([]byte, 4*w)
	putWord(a, b, uint64(intervalNS/1e9))
	putWord(a, b[w:], uint64(intervalNS%1e9/unit))
	putWord(a, b[2*w:], uint64(valueNS/1e9))
	putWord(a, b[3*w:], uint64(valueNS%1e9/unit))
	return b
}

func decodeTimerPair(a Arch, b []byte, unit int64, what string) (intervalNS, valueNS int64, err error) {
	w := a.WordSize()
	if len(b) < 4*w {
		return 0, 0, fmt.Errorf("%s of %d bytes, want %d", what, len(b), 4*w)
	}
	sl := func(off int) int64 {
		if w == 8 {
			return int64(word(a, b[off:]))
		}
		return int64(int32(word(a, b[off:])))
	}
	return sl(0)*1e9 + sl(w)*unit, sl(2*w)*1e9 + sl(3*w)*unit, nil
}

// SigeventSize is the size of struct sigevent on every Linux arch
// (SIGEV_MAX_SIZE).
const SigeventSize = 64

// EncodeSigevent lays out struct sigevent: sigev_value (a pointer-sized
// union), sigev_signo, sigev_notify, then the union whose first member is
// the thread ID of SIGEV_THREAD_ID.
func EncodeSigevent(a Arch, value uint64, signo, notify, tid int32) []byte {
	w := a.WordSize()
	o := a.ByteOrder()
	b := make([]byte, SigeventSize)
	putWord(a, b, value)
	o.PutUint32(b[w:], uint32(signo))
	o.PutUint32(b[w+4:], uint32(notify))
	o.PutUint32(b[w+8:], uint32(tid))
	return b
}

// EncodeEpollEvent lays out struct epoll_event { __u32 events; __u64 data; }:
// packed (12 bytes) on x86, naturally aligned (16 bytes) elsewhere
// (include/uapi/linux/eventpoll.h, EPOLL_PACKED).
func EncodeEpollEvent(a Arch, events uint32, data uint64) []byte {
	o := a.ByteOrder()
	if k := a.Kind(); k == KindAMD64 || k == KindI386 {
		b := make([]byte, 12)
		o.PutUint32(b, events)
		o.PutUint64(b[4:], data)
		return b
	}
	b := make([]byte, 16)
	o.PutUint32(b, events)
	o.PutUint64(b[8:], data)
	return b
}
