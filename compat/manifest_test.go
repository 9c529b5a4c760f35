package compat

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/image"
)

func rs(nt uint32, data []byte) *image.Regset {
	return &image.Regset{NoteType: nt, Name: RegsetName(nt), Data: data}
}

// xstateArea builds an NT_X86_XSTATE buffer with XCR0 and XSTATE_BV set.
func xstateArea(xcr0, bv uint64) []byte {
	b := make([]byte, 2696) // the size on an AVX-512 + PKRU machine
	binary.LittleEndian.PutUint64(b[464:], xcr0)
	binary.LittleEndian.PutUint64(b[512:], bv)
	return b
}

// prstatusPPC builds NT_PRSTATUS with msr at PT_MSR, 64- or 32-bit words.
func prstatusPPC(o binary.ByteOrder, word int, msr uint64) []byte {
	b := make([]byte, 48*word)
	if word == 8 {
		o.PutUint64(b[ptMSR*8:], msr)
	} else {
		o.PutUint32(b[ptMSR*4:], uint32(msr))
	}
	return b
}

func u64(o binary.ByteOrder, vs ...uint64) []byte {
	b := make([]byte, 8*len(vs))
	for i, v := range vs {
		o.PutUint64(b[i*8:], v)
	}
	return b
}

func withByte(b []byte, at int, v byte) []byte { b[at] = v; return b }

var (
	le = binary.LittleEndian
	be = binary.BigEndian
)

type capCase struct {
	name    string
	arch    image.Arch
	regsets []*image.Regset
	caps    []image.Cap
	xstate  uint64
	err     bool
}

var capCases = []capCase{
	{name: "amd64 AVX in use", arch: image.Arch_ARCH_AMD64, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, make([]byte, 216)), rs(unix.NT_PRFPREG, make([]byte, 512)),
		rs(unix.NT_X86_XSTATE, xstateArea(xcr0AVX512, XFeatureFP|XFeatureSSE|XFeatureYMM)),
	}, caps: []image.Cap{image.Cap_CAP_FPU, image.Cap_CAP_SSE, image.Cap_CAP_AVX}, xstate: xcr0AVX512},
	{name: "amd64 AVX-512 and PKRU", arch: image.Arch_ARCH_AMD64, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, make([]byte, 216)), rs(unix.NT_PRFPREG, make([]byte, 512)),
		rs(unix.NT_X86_XSTATE, xstateArea(xcr0AVX512, XFeatureFP|XFeatureOpmask|XFeaturePKRU)),
	}, caps: []image.Cap{image.Cap_CAP_FPU, image.Cap_CAP_AVX512, image.Cap_CAP_PKEY}, xstate: xcr0AVX512},
	{name: "amd64 without xsave", arch: image.Arch_ARCH_AMD64, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, make([]byte, 216)), rs(unix.NT_PRFPREG, make([]byte, 512)),
	}, caps: []image.Cap{image.Cap_CAP_FPU}},
	{name: "i386 compat sizes", arch: image.Arch_ARCH_I386, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, make([]byte, 68)), rs(unix.NT_PRFPREG, make([]byte, 108)),
		rs(unix.NT_X86_XSTATE, xstateArea(xcr0AVX2, XFeatureSSE)),
	}, caps: []image.Cap{image.Cap_CAP_FPU, image.Cap_CAP_SSE}, xstate: xcr0AVX2},
	{name: "i386 with a 64-bit prstatus", arch: image.Arch_ARCH_I386, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, make([]byte, 216))}, err: true},
	{name: "amd64 without prstatus", arch: image.Arch_ARCH_AMD64, regsets: nil, err: true},
	{name: "amd64 short fpregs", arch: image.Arch_ARCH_AMD64, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, make([]byte, 216)), rs(unix.NT_PRFPREG, make([]byte, 108))}, err: true},
	{name: "xstate too short", arch: image.Arch_ARCH_AMD64, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, make([]byte, 216)), rs(unix.NT_X86_XSTATE, make([]byte, 512))}, err: true},
	{name: "XSTATE_BV outside XCR0", arch: image.Arch_ARCH_AMD64, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, make([]byte, 216)), rs(unix.NT_X86_XSTATE, xstateArea(xcr0AVX2, XFeatureOpmask))}, err: true},
	{name: "XCR0 without x87", arch: image.Arch_ARCH_AMD64, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, make([]byte, 216)), rs(unix.NT_X86_XSTATE, xstateArea(XFeatureYMM, 0))}, err: true},

	{name: "ppc64le FP VMX VSX from MSR", arch: image.Arch_ARCH_PPC64LE, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, prstatusPPC(le, 8, MSRFP|MSRVEC|MSRVSX)),
	}, caps: []image.Cap{image.Cap_CAP_FPU, image.Cap_CAP_VMX, image.Cap_CAP_VSX}},
	{name: "ppc64le transaction in flight", arch: image.Arch_ARCH_PPC64LE, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, prstatusPPC(le, 8, MSRTST)),
	}, caps: []image.Cap{image.Cap_CAP_TM}},
	{name: "ppc64 BE: MSR read big-endian", arch: image.Arch_ARCH_PPC64, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, prstatusPPC(be, 8, MSRTSS|MSRFP)),
	}, caps: []image.Cap{image.Cap_CAP_TM, image.Cap_CAP_FPU}},
	{name: "ppc64 BE: a little-endian MSR is not read as one", arch: image.Arch_ARCH_PPC64, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, prstatusPPC(le, 8, MSRFP)), // bit 13 LE lands on bit 53+ BE: nothing we know
	}},
	{name: "ppc64le facilities off, contents show use", arch: image.Arch_ARCH_PPC64LE, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, prstatusPPC(le, 8, 0)),
		rs(unix.NT_PRFPREG, withByte(make([]byte, 264), 8, 1)),
		rs(unix.NT_PPC_VMX, withByte(make([]byte, 544), 17, 1)),
		rs(unix.NT_PPC_VSX, withByte(make([]byte, 256), 255, 1)),
	}, caps: []image.Cap{image.Cap_CAP_FPU, image.Cap_CAP_VMX, image.Cap_CAP_VSX}},
	{name: "ppc64le VSCR alone (NJ at start) is no VMX use", arch: image.Arch_ARCH_PPC64LE, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, prstatusPPC(le, 8, 0)),
		rs(unix.NT_PPC_VMX, withByte(make([]byte, 544), 32*16+2, 1)),
	}},
	{name: "ppc64le SPRs", arch: image.Arch_ARCH_PPC64LE, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, prstatusPPC(le, 8, 0)),
		rs(unix.NT_PPC_DSCR, u64(le, 0x10)),
		rs(unix.NT_PPC_TAR, u64(le, 0x7fff0000)),
		rs(unix.NT_PPC_PPR, u64(le, 2<<50)),
		rs(unix.NT_PPC_EBB, u64(le, 0, 0x1000, 0)),
		rs(unix.NT_PPC_PKEY, u64(le, 0, 0, 0)),
	}, caps: []image.Cap{image.Cap_CAP_DSCR, image.Cap_CAP_TAR, image.Cap_CAP_PPR, image.Cap_CAP_EBB, image.Cap_CAP_PKEY}},
	{name: "ppc64 SPRs at their defaults", arch: image.Arch_ARCH_PPC64, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, prstatusPPC(be, 8, 0)),
		rs(unix.NT_PPC_DSCR, u64(be, 0)),
		rs(unix.NT_PPC_TAR, u64(be, 0)),
		rs(unix.NT_PPC_PPR, u64(be, 4<<50)),
		rs(unix.NT_PPC_EBB, u64(be, 0, 0, 0)),
	}},
	{name: "ppc64 old default PPR", arch: image.Arch_ARCH_PPC64, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, prstatusPPC(be, 8, 0)), rs(unix.NT_PPC_PPR, u64(be, 3<<50))}},
	{name: "ppc64 TM checkpointed set readable", arch: image.Arch_ARCH_PPC64, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, prstatusPPC(be, 8, 0)), rs(unix.NT_PPC_TM_CGPR, make([]byte, 384)),
	}, caps: []image.Cap{image.Cap_CAP_TM}},
	{name: "ppc32 MSR is word 33 of u32", arch: image.Arch_ARCH_PPC32, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, prstatusPPC(be, 4, MSRFP|MSRVEC)),
		rs(unix.NT_PPC_VMX, make([]byte, 544)),
	}, caps: []image.Cap{image.Cap_CAP_FPU, image.Cap_CAP_VMX}},
	{name: "ppc32 Book E: MSR bit 25 is SPE", arch: image.Arch_ARCH_PPC32, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, prstatusPPC(be, 4, MSRVEC)),
		rs(unix.NT_PPC_SPE, withByte(make([]byte, 140), 3, 1)),
	}, caps: []image.Cap{image.Cap_CAP_SPE}},
	{name: "ppc32 with a 64-bit prstatus", arch: image.Arch_ARCH_PPC32, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, prstatusPPC(be, 8, 0))}, err: true},
	{name: "ppc64 with a 32-bit prstatus", arch: image.Arch_ARCH_PPC64, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, prstatusPPC(be, 4, 0))}, err: true},
	{name: "ppc64le VSX set of the wrong size", arch: image.Arch_ARCH_PPC64LE, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, prstatusPPC(le, 8, 0)), rs(unix.NT_PPC_VSX, make([]byte, 512))}, err: true},
	{name: "ppc64le DSCR short", arch: image.Arch_ARCH_PPC64LE, regsets: []*image.Regset{
		rs(unix.NT_PRSTATUS, prstatusPPC(le, 8, 0)), rs(unix.NT_PPC_DSCR, make([]byte, 4))}, err: true},
	{name: "unknown arch", arch: image.Arch_ARCH_UNSPECIFIED, err: true},
}

func TestCapabilities(t *testing.T) {
	for _, tc := range capCases {
		t.Run(tc.name, func(t *testing.T) {
			caps, xstate, err := Capabilities(tc.arch, tc.regsets)
			if tc.err {
				if err == nil || !errors.Is(err, ErrRegsetLayout) {
					t.Fatalf("err = %v, want an ErrRegsetLayout", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := capBits(tc.caps...); caps != want {
				t.Errorf("caps %#x, want %#x", caps, want)
			}
			if xstate != tc.xstate {
				t.Errorf("xstate %#x, want %#x", xstate, tc.xstate)
			}
		})
	}
}

func TestRegsetNames(t *testing.T) {
	seen := map[string]uint32{}
	for nt, name := range regsetNames {
		if other, dup := seen[name]; dup {
			t.Errorf("name %q for note types %#x and %#x", name, nt, other)
		}
		seen[name] = nt
	}
	for nt, want := range map[uint32]string{unix.NT_PRSTATUS: "prstatus", unix.NT_PPC_VSX: "vsx", unix.NT_X86_XSTATE: "xstate", 0x9999: ""} {
		if got := RegsetName(nt); got != want {
			t.Errorf("RegsetName(%#x) = %q, want %q", nt, got, want)
		}
	}
}

func TestHWCapTables(t *testing.T) {
	for name, table := range map[string][]HWCapBit{"PowerPCHWCap": PowerPCHWCap, "PowerPCHWCap2": PowerPCHWCap2, "X86HWCap": X86HWCap, "X86HWCap2": X86HWCap2} {
		var all uint64
		for _, b := range table {
			if b.Mask == 0 || b.Mask&(b.Mask-1) != 0 {
				t.Errorf("%s %s: mask %#x is not one bit", name, b.Name, b.Mask)
			}
			if all&b.Mask != 0 {
				t.Errorf("%s %s: bit %#x named twice", name, b.Name, b.Mask)
			}
			all |= b.Mask
		}
	}
	if got := HWCapNames(PowerPCHWCap2, PPCFeature2MMA|PPCFeature2Arch31|1<<40); len(got) != 3 ||
		got[0] != "PPC_FEATURE2_ARCH_3_1 (ISA 3.1, POWER10)" || got[2] != "unknown bit 40" {
		t.Errorf("HWCapNames = %q", got)
	}
	if got := requiredHWCap(X86HWCap, hwcapX86); got&(1<<28) != 0 || got&(1<<26) == 0 {
		t.Errorf("requiredHWCap(x86) = %#x: want ht dropped and sse2 kept", got)
	}
}

// FuzzCapabilities: register sets come from a peer's image; whatever their
// sizes and contents, Capabilities answers or errs, and never panics.
func FuzzCapabilities(f *testing.F) {
	for _, tc := range capCases {
		for _, r := range tc.regsets {
			f.Add(uint8(tc.arch), r.GetNoteType(), r.GetData())
		}
	}
	f.Fuzz(func(t *testing.T, arch uint8, nt uint32, data []byte) {
		a := image.Arch(arch % 6)
		// The fuzzed set next to a valid prstatus of the arch, and alone.
		var pr []byte
		switch a {
		case image.Arch_ARCH_AMD64:
			pr = make([]byte, SizeAMD64PRStatus)
		case image.Arch_ARCH_I386:
			pr = make([]byte, SizeI386PRStatus)
		case image.Arch_ARCH_PPC32:
			pr = make([]byte, SizePPC32PRStatus)
		default:
			pr = make([]byte, SizePPC64PRStatus)
		}
		_, _, _ = Capabilities(a, []*image.Regset{rs(unix.NT_PRSTATUS, pr), rs(nt, data)})
		_, _, _ = Capabilities(a, []*image.Regset{rs(nt, data)})
	})
}
