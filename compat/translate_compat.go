package compat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/migrated/migrated/image"
)

// The structs restore writes into (or reads from) a 32-bit task's memory
// for the syscalls it injects there, in their compat layouts
// (include/linux/compat.h): every long and pointer is 32 bits, and the byte
// order is the task's (little-endian i386, big-endian ppc32). The image
// keeps the 64-bit values; these functions convert.

// Sizes of the compat structs.
const (
	// SizeCompatSigaction is struct compat_sigaction: sa_handler,
	// sa_flags, sa_restorer (x86 and powerpc both define
	// __ARCH_HAS_SA_RESTORER) and compat_sigset_t sa_mask (two u32).
	SizeCompatSigaction = 4 + 4 + 4 + 8
	// SizeCompatSigset is compat_sigset_t: sig[_COMPAT_NSIG_WORDS] of u32,
	// sig[0] holding signals 1-32.
	SizeCompatSigset = 8
	// SizeCompatStack is compat_stack_t: ss_sp, ss_flags (int), ss_size.
	SizeCompatStack = 12
	// SizeCompatRlimit is struct compat_rlimit: rlim_cur, rlim_max.
	SizeCompatRlimit = 8
	// SizeCompatItimerval is struct old_itimerval32: it_interval and
	// it_value, each struct old_timeval32 {s32 tv_sec; s32 tv_usec}
	// (include/linux/time32.h).
	SizeCompatItimerval = 16
	// SizeCompatRobustListHead is struct compat_robust_list_head: list.next,
	// futex_offset, list_op_pending. It is also the len a 32-bit task
	// passes to set_robust_list.
	SizeCompatRobustListHead = 12
)

// CompatRlimInfinity is COMPAT_RLIM_INFINITY (include/linux/compat.h): the
// compat getrlimit/setrlimit map it to and from RLIM_INFINITY.
const CompatRlimInfinity = 0xffffffff

// RlimInfinity is RLIM_INFINITY of a 64-bit kernel, as the image keeps it.
const RlimInfinity = math.MaxUint64

// ErrCompatRange is the sentinel of a 64-bit value that has no compat
// representation (a pointer above 4 GiB, a finite rlimit of 4 GiB or more,
// a time beyond 2038).
var ErrCompatRange = errors.New("value does not fit the 32-bit compat layout")

// ErrCompatValue is the sentinel of compat bytes that no kernel writes
// (tv_usec of a million or more, a negative time).
var ErrCompatValue = errors.New("invalid compat value")

// CompatABI is the compat layout of one 32-bit arch.
type CompatABI struct {
	Arch  image.Arch
	Order binary.ByteOrder
}

var (
	// CompatI386 is an i386 task on an amd64 kernel.
	CompatI386 = CompatABI{image.Arch_ARCH_I386, binary.LittleEndian}
	// CompatPPC32 is a 32-bit powerpc task on a big-endian ppc64 kernel.
	CompatPPC32 = CompatABI{image.Arch_ARCH_PPC32, binary.BigEndian}
)

// CompatABIOf returns the compat layout of a 32-bit arch.
func CompatABIOf(a image.Arch) (CompatABI, error) {
	switch a {
	case image.Arch_ARCH_I386:
		return CompatI386, nil
	case image.Arch_ARCH_PPC32:
		return CompatPPC32, nil
	}
	return CompatABI{}, fmt.Errorf("compat layout of %s: not a 32-bit arch", archName(a))
}

func fit32(what string, v uint64) (uint32, error) {
	if v > math.MaxUint32 {
		return 0, fmt.Errorf("%s %#x: %w", what, v, ErrCompatRange)
	}
	return uint32(v), nil
}

// EncodeSigset writes a 64-signal mask as compat_sigset_t: two u32, the
// low word (signals 1-32) first, each in the task's byte order.
func (c CompatABI) EncodeSigset(mask uint64) []byte {
	b := make([]byte, SizeCompatSigset)
	c.Order.PutUint32(b, uint32(mask))
	c.Order.PutUint32(b[4:], uint32(mask>>32))
	return b
}

// DecodeSigset reads compat_sigset_t.
func (c CompatABI) DecodeSigset(b []byte) (uint64, error) {
	if len(b) != SizeCompatSigset {
		return 0, sizeErr("compat_sigset_t", len(b), SizeCompatSigset)
	}
	return uint64(c.Order.Uint32(b)) | uint64(c.Order.Uint32(b[4:]))<<32, nil
}

// EncodeSigaction writes struct compat_sigaction for rt_sigaction.
func (c CompatABI) EncodeSigaction(sa *image.SigAction) ([]byte, error) {
	h, err := fit32("sa_handler", sa.GetHandler())
	if err != nil {
		return nil, fmt.Errorf("signal %d: %w", sa.GetSigno(), err)
	}
	f, err := fit32("sa_flags", sa.GetFlags())
	if err != nil {
		return nil, fmt.Errorf("signal %d: %w", sa.GetSigno(), err)
	}
	r, err := fit32("sa_restorer", sa.GetRestorer())
	if err != nil {
		return nil, fmt.Errorf("signal %d: %w", sa.GetSigno(), err)
	}
	b := make([]byte, SizeCompatSigaction)
	c.Order.PutUint32(b, h)
	c.Order.PutUint32(b[4:], f)
	c.Order.PutUint32(b[8:], r)
	copy(b[12:], c.EncodeSigset(sa.GetMask()))
	return b, nil
}

// DecodeSigaction reads struct compat_sigaction of signal signo.
func (c CompatABI) DecodeSigaction(signo int32, b []byte) (*image.SigAction, error) {
	if len(b) != SizeCompatSigaction {
		return nil, sizeErr("compat_sigaction", len(b), SizeCompatSigaction)
	}
	mask, _ := c.DecodeSigset(b[12:])
	return &image.SigAction{
		Signo:    signo,
		Handler:  uint64(c.Order.Uint32(b)),
		Flags:    uint64(c.Order.Uint32(b[4:])),
		Restorer: uint64(c.Order.Uint32(b[8:])),
		Mask:     mask,
	}, nil
}

// EncodeStack writes compat_stack_t for sigaltstack.
func (c CompatABI) EncodeStack(s *image.SigAltStack) ([]byte, error) {
	sp, err := fit32("ss_sp", s.GetSp())
	if err != nil {
		return nil, err
	}
	size, err := fit32("ss_size", s.GetSize())
	if err != nil {
		return nil, err
	}
	b := make([]byte, SizeCompatStack)
	c.Order.PutUint32(b, sp)
	c.Order.PutUint32(b[4:], s.GetFlags())
	c.Order.PutUint32(b[8:], size)
	return b, nil
}

// DecodeStack reads compat_stack_t.
func (c CompatABI) DecodeStack(b []byte) (*image.SigAltStack, error) {
	if len(b) != SizeCompatStack {
		return nil, sizeErr("compat_stack_t", len(b), SizeCompatStack)
	}
	return &image.SigAltStack{
		Sp:    uint64(c.Order.Uint32(b)),
		Flags: c.Order.Uint32(b[4:]),
		Size:  uint64(c.Order.Uint32(b[8:])),
	}, nil
}

func (c CompatABI) rlim(what string, v uint64) (uint32, error) {
	switch {
	case v == RlimInfinity:
		return CompatRlimInfinity, nil
	case v >= CompatRlimInfinity:
		// The compat setrlimit reads 0xffffffff as infinity: a finite limit
		// of 4 GiB or more cannot be said. Inject prlimit64 instead.
		return 0, fmt.Errorf("%s %d (use prlimit64): %w", what, v, ErrCompatRange)
	}
	return uint32(v), nil
}

// EncodeRlimit writes struct compat_rlimit for setrlimit. RLIM_INFINITY
// becomes COMPAT_RLIM_INFINITY; a finite limit of 4 GiB or more has no
// compat form (ErrCompatRange): prlimit64 takes 64-bit limits from a 32-bit
// task too.
func (c CompatABI) EncodeRlimit(r *image.Rlimit) ([]byte, error) {
	cur, err := c.rlim("rlim_cur", r.GetCur())
	if err != nil {
		return nil, fmt.Errorf("rlimit %d: %w", r.GetResource(), err)
	}
	max, err := c.rlim("rlim_max", r.GetMax())
	if err != nil {
		return nil, fmt.Errorf("rlimit %d: %w", r.GetResource(), err)
	}
	b := make([]byte, SizeCompatRlimit)
	c.Order.PutUint32(b, cur)
	c.Order.PutUint32(b[4:], max)
	return b, nil
}

// DecodeRlimit reads struct compat_rlimit of resource; COMPAT_RLIM_INFINITY
// becomes RLIM_INFINITY.
func (c CompatABI) DecodeRlimit(resource int32, b []byte) (*image.Rlimit, error) {
	if len(b) != SizeCompatRlimit {
		return nil, sizeErr("compat_rlimit", len(b), SizeCompatRlimit)
	}
	widen := func(v uint32) uint64 {
		if v == CompatRlimInfinity {
			return RlimInfinity
		}
		return uint64(v)
	}
	return &image.Rlimit{Resource: resource, Cur: widen(c.Order.Uint32(b)), Max: widen(c.Order.Uint32(b[4:]))}, nil
}

// timeval32 splits nanoseconds into old_timeval32, rounding a remainder up
// to the next microsecond: a timer that had 300 ns left must not become a
// disarmed timer (it_value 0) nor fire earlier than it would have.
func timeval32(what string, ns int64) (sec, usec int32, err error) {
	if ns < 0 {
		return 0, 0, fmt.Errorf("%s %d ns: %w", what, ns, ErrCompatValue)
	}
	us := ns / 1000
	if ns%1000 != 0 {
		us++
	}
	s := us / 1e6
	if s > math.MaxInt32 {
		return 0, 0, fmt.Errorf("%s %d s: %w", what, s, ErrCompatRange)
	}
	return int32(s), int32(us % 1e6), nil
}

// EncodeItimerval writes struct old_itimerval32 for setitimer.
func (c CompatABI) EncodeItimerval(t *image.ITimer) ([]byte, error) {
	is, ius, err := timeval32("it_interval", t.GetIntervalNs())
	if err != nil {
		return nil, fmt.Errorf("itimer %d: %w", t.GetWhich(), err)
	}
	vs, vus, err := timeval32("it_value", t.GetValueNs())
	if err != nil {
		return nil, fmt.Errorf("itimer %d: %w", t.GetWhich(), err)
	}
	b := make([]byte, SizeCompatItimerval)
	for i, v := range []int32{is, ius, vs, vus} {
		c.Order.PutUint32(b[i*4:], uint32(v))
	}
	return b, nil
}

// DecodeItimerval reads struct old_itimerval32 of timer which (getitimer).
func (c CompatABI) DecodeItimerval(which int32, b []byte) (*image.ITimer, error) {
	if len(b) != SizeCompatItimerval {
		return nil, sizeErr("old_itimerval32", len(b), SizeCompatItimerval)
	}
	var v [4]int32
	for i := range v {
		v[i] = int32(c.Order.Uint32(b[i*4:]))
	}
	ns := func(what string, sec, usec int32) (int64, error) {
		if sec < 0 || usec < 0 || usec >= 1e6 {
			return 0, fmt.Errorf("%s {%d s, %d us}: %w", what, sec, usec, ErrCompatValue)
		}
		return int64(sec)*1e9 + int64(usec)*1e3, nil
	}
	interval, err := ns("it_interval", v[0], v[1])
	if err != nil {
		return nil, err
	}
	value, err := ns("it_value", v[2], v[3])
	if err != nil {
		return nil, err
	}
	return &image.ITimer{Which: which, IntervalNs: interval, ValueNs: value}, nil
}

// CompatRobustListHead is struct compat_robust_list_head, the head of a
// 32-bit thread's robust futex list in its memory.
type CompatRobustListHead struct {
	Next          uint32 // list.next (compat_uptr_t)
	FutexOffset   int32  // compat_long_t
	ListOpPending uint32 // compat_uptr_t
}

// EncodeRobustListHead writes struct compat_robust_list_head.
func (c CompatABI) EncodeRobustListHead(h CompatRobustListHead) []byte {
	b := make([]byte, SizeCompatRobustListHead)
	c.Order.PutUint32(b, h.Next)
	c.Order.PutUint32(b[4:], uint32(h.FutexOffset))
	c.Order.PutUint32(b[8:], h.ListOpPending)
	return b
}

// DecodeRobustListHead reads struct compat_robust_list_head.
func (c CompatABI) DecodeRobustListHead(b []byte) (CompatRobustListHead, error) {
	if len(b) != SizeCompatRobustListHead {
		return CompatRobustListHead{}, sizeErr("compat_robust_list_head", len(b), SizeCompatRobustListHead)
	}
	return CompatRobustListHead{
		Next:          c.Order.Uint32(b),
		FutexOffset:   int32(c.Order.Uint32(b[4:])),
		ListOpPending: c.Order.Uint32(b[8:]),
	}, nil
}

// CheckRobustList checks a 32-bit thread's robust list registration before
// restore re-registers it with set_robust_list: the head must be a 32-bit
// address and the length the compat head's size (the kernel refuses any
// other with EINVAL). A thread that never registered has head 0.
func (c CompatABI) CheckRobustList(r *image.RobustList) error {
	if r.GetHead() == 0 {
		return nil
	}
	if _, err := fit32("robust list head", r.GetHead()); err != nil {
		return err
	}
	if r.GetLen() != SizeCompatRobustListHead {
		return fmt.Errorf("robust list len %d, want %d: %w", r.GetLen(), SizeCompatRobustListHead, ErrCompatValue)
	}
	return nil
}
