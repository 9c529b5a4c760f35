package powerpc

import (
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/migrated/migrated/arch"
)

// TestLayouts checks arch/layout.go for the POWER tasks against the kernel
// structures, byte by byte:
//   - struct sigaction for rt_sigaction: handler, flags, restorer, mask
//     (include/linux/signal_types.h; powerpc defines __ARCH_HAS_SA_RESTORER,
//     arch/powerpc/include/asm/signal.h); the compat one is u32 words and a
//     compat_sigset_t of two u32, signals 1-32 first (include/linux/compat.h).
//   - stack_t: ss_sp, int ss_flags, ss_size (arch/powerpc/include/uapi/asm/signal.h),
//     compat_stack_t of u32.
//   - struct itimerval: two timevals of longs; compat old_itimerval32 of s32.
//   - struct epoll_event: not packed outside x86 (include/uapi/linux/eventpoll.h),
//     so data sits at offset 8, also for a 32-bit task (u64 is 8-byte aligned
//     in the 32-bit PowerPC ELF ABI, and the compat epoll_ctl copies the
//     native struct).
func TestLayouts(t *testing.T) {
	sa := arch.Sigaction{Handler: 0x10001000, Flags: 0x14000000, Restorer: 0x10002000, Mask: 1<<9 | 1<<32}
	for _, tc := range []struct {
		a                               *Power
		sigaction, stack, itimer, epoll string
	}{
		{PPC64LE,
			"0010001000000000" + "0000001400000000" + "0020001000000000" + "0002000001000000",
			"0000ff7fff7f0000" + "0100000000000000" + "0000010000000000",
			"0100000000000000" + "f401000000000000" + "0200000000000000" + "0000000000000000",
			"01000000" + "00000000" + "8877665544332211"},
		{PPC64,
			"0000000010001000" + "0000000014000000" + "0000000010002000" + "0000000100000200",
			"00007fff7fff0000" + "0000000100000000" + "0000000000010000",
			"0000000000000001" + "00000000000001f4" + "0000000000000002" + "0000000000000000",
			"00000001" + "00000000" + "1122334455667788"},
		{PPC32,
			"10001000" + "14000000" + "10002000" + "00000200" + "00000001",
			"7fff0000" + "00000001" + "00010000",
			"00000001" + "000001f4" + "00000002" + "00000000",
			"00000001" + "00000000" + "1122334455667788"},
	} {
		a := tc.a
		sp := uint64(0x7fff7fff0000)
		if a.WordSize() == 4 {
			sp = 0x7fff0000
		}
		for _, c := range []struct {
			name string
			got  []byte
			want string
		}{
			{"sigaction", arch.EncodeSigaction(a, sa), tc.sigaction},
			{"stack_t", arch.EncodeStack(a, sp, 1, 0x10000), tc.stack},
			{"itimerval", arch.EncodeITimerval(a, 1_000_500_000, 2_000_000_000), tc.itimer},
			{"epoll_event", arch.EncodeEpollEvent(a, 1, 0x1122334455667788), tc.epoll},
		} {
			if got := hex.EncodeToString(c.got); got != c.want {
				t.Errorf("%s %s:\n got %s\nwant %s", a.Name(), c.name, got, c.want)
			}
		}
		if got, err := arch.DecodeSigaction(a, arch.EncodeSigaction(a, sa)); err != nil || got != sa {
			t.Errorf("%s: sigaction round trip %+v, %v", a.Name(), got, err)
		}
		if p, f, s, err := arch.DecodeStack(a, arch.EncodeStack(a, sp, 2, 8192)); err != nil || p != sp || f != 2 || s != 8192 {
			t.Errorf("%s: stack_t round trip %#x %d %d %v", a.Name(), p, f, s, err)
		}
		if i, v, err := arch.DecodeITimerval(a, arch.EncodeITimerval(a, 1_000_500_000, 2_000_000_000)); err != nil || i != 1_000_500_000 || v != 2_000_000_000 {
			t.Errorf("%s: itimerval round trip %d %d %v", a.Name(), i, v, err)
		}
	}
}

// A ppc32 task's sigqueue value (or a POSIX timer's) is the sival_int of the
// 64-bit kernel's union: its first four bytes, the high half of sival_ptr
// on this big-endian kernel. The compat siginfo must carry that int, not
// the pointer's low half.
func TestSiginfoForPPC32KeepsSivalInt(t *testing.T) {
	be := binary.BigEndian
	for _, code := range []int32{-1 /* SI_QUEUE */, -2 /* SI_TIMER */} {
		raw := make([]byte, arch.SiginfoSize)
		be.PutUint32(raw[0:], 35)
		be.PutUint32(raw[8:], uint32(code))
		be.PutUint32(raw[16:], 7)     // si_pid / si_timerid
		be.PutUint32(raw[20:], 8)     // si_uid / si_overrun
		be.PutUint32(raw[24:], 1001)  // sival_int
		be.PutUint32(raw[28:], 0xbad) // the rest of sival_ptr
		got, err := arch.SiginfoForTask(PPC32, raw)
		if err != nil {
			t.Fatal(err)
		}
		if a, b, v := be.Uint32(got[12:]), be.Uint32(got[16:]), be.Uint32(got[20:]); a != 7 || b != 8 || v != 1001 {
			t.Errorf("code %d: compat union %d %d value %d, want 7 8 1001", code, a, b, v)
		}
	}
}
