package compat

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/migrated/migrated/image"
)

// auxvBytes lays out (type, value) pairs and AT_NULL as the kernel writes
// /proc/PID/auxv for a task of that word size and byte order.
func auxvBytes(o binary.ByteOrder, word int, pairs ...uint64) []byte {
	pairs = append(pairs, AT_NULL, 0)
	b := make([]byte, word*len(pairs))
	for i, v := range pairs {
		if word == 4 {
			o.PutUint32(b[i*4:], uint32(v))
		} else {
			o.PutUint64(b[i*8:], v)
		}
	}
	return b
}

func i386Task() *image.Task {
	thread := func(tid int32) *image.Thread {
		return &image.Thread{Tid: tid, Regsets: []*image.Regset{
			rs(unix.NT_PRSTATUS, make([]byte, SizeI386PRStatus)),
			rs(unix.NT_PRFPREG, make([]byte, SizeI387FPRegs)),
			rs(unix.NT_X86_XSTATE, xstateArea(xcr0AVX2, XFeatureFP|XFeatureSSE)),
			rs(unix.NT_386_TLS, make([]byte, 48)),
		}}
	}
	t := &image.Task{
		Header:  &image.Header{FormatVersion: 1, Arch: image.Arch_ARCH_I386, Vdso: vdso(32)},
		Threads: []*image.Thread{thread(500), thread(501)},
		Mm:      &image.MM{Auxv: auxvBytes(binary.LittleEndian, 4, AT_SYSINFO_EHDR, 0xf7f8a000, AT_HWCAP, hwcapX86, AT_PAGESZ, 4096, AT_HWCAP2, 0)},
		Fds: []*image.Fd{{Fd: 0, Kind: image.FdKind_FD_DEV_NULL}, {Fd: 1, Kind: image.FdKind_FD_REGULAR},
			{Fd: 2, Kind: image.FdKind_FD_REGULAR}},
		Creds: &image.Creds{Uids: []uint32{1000, 1000, 1000, 1000}},
		Vmas:  []*image.VMA{{Kind: image.VMAKind_VMA_ANON_PRIVATE}, {Kind: image.VMAKind_VMA_ANON_SHARED}},
	}
	t.Threads[1].Rseq = &image.Rseq{Addr: 0xf7d00020, Len: 32, Sig: 0x53053053}
	t.Threads[0].RobustList = &image.RobustList{Head: 0xf7d4a6e4, Len: 12}
	return t
}

func ppcTask(arch image.Arch, hwcap2 uint64) *image.Task {
	o, word := binary.ByteOrder(binary.LittleEndian), 8
	if arch != image.Arch_ARCH_PPC64LE {
		o = binary.BigEndian
	}
	if arch == image.Arch_ARCH_PPC32 {
		word = 4
	}
	return &image.Task{
		Header: &image.Header{FormatVersion: 1, Arch: arch, Vdso: vdso(2)},
		Threads: []*image.Thread{{Tid: 77, Regsets: []*image.Regset{
			rs(unix.NT_PRSTATUS, prstatusPPC(o, word, MSRFP|MSRVEC|MSRVSX)),
		}}},
		Mm: &image.MM{Auxv: auxvBytes(o, word, AT_HWCAP, hwcapPower, AT_HWCAP2, hwcap2, AT_PAGESZ, 65536)},
	}
}

func TestNewManifest(t *testing.T) {
	m, err := NewManifest(i386Task())
	if err != nil {
		t.Fatal(err)
	}
	want := &image.Manifest{
		Header: &image.Header{FormatVersion: 1, Arch: image.Arch_ARCH_I386, Endian: image.Endian_ENDIAN_LITTLE,
			WordSize: 4, Abi: image.ABI_ABI_SYSV_I386, PageSize: 4096, Vdso: vdso(32)},
		Capabilities: capBits(image.Cap_CAP_FPU, image.Cap_CAP_SSE, image.Cap_CAP_RSEQ,
			image.Cap_CAP_ROBUST_LIST, image.Cap_CAP_SHARED_ANON),
		Hwcap:          hwcapX86,
		FdKinds:        []image.FdKind{image.FdKind_FD_DEV_NULL, image.FdKind_FD_REGULAR},
		Tids:           []int32{500, 501},
		XstateFeatures: xcr0AVX2,
		Regsets:        []string{RegsetPRStatus, RegsetFPRegs, RegsetXState, RegsetTLS},
		Uid:            1000,
		NeedsCompat:    true,
	}
	if !proto.Equal(m, want) {
		t.Errorf("manifest\n%v\nwant\n%v", m, want)
	}
	if v := Decide(m, hostAMD64()); v.GetKind() != image.Verdict_TRANSLATE || !HasStep(v, StepStub32) {
		t.Errorf("i386 task toward amd64 with IA32 emulation: %s", NewReport(v))
	}

	for _, tc := range []struct {
		name  string
		task  *image.Task
		h     *HostCaps
		kind  image.Verdict_Kind
		codes []string
	}{
		{"ppc64le POWER9 task to POWER9", ppcTask(image.Arch_ARCH_PPC64LE, hwcap2Power9), hostP9LE(), image.Verdict_ACCEPT, nil},
		{"ppc64le POWER10 task to POWER9", ppcTask(image.Arch_ARCH_PPC64LE, hwcap2Power10), hostP9LE(), image.Verdict_REJECT, []string{ReasonHWCap2}},
		{"ppc32 task to ppc64le", ppcTask(image.Arch_ARCH_PPC32, hwcap2Power9), hostP9LE(), image.Verdict_REJECT,
			[]string{ReasonNoCompat32, ReasonEndianness, ReasonRegsetUnsupported}}, // and it uses VSX
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewManifest(tc.task)
			if err != nil {
				t.Fatal(err)
			}
			if m.GetHeader().GetPageSize() != 65536 || m.GetHwcap() != hwcapPower {
				t.Errorf("page size %d, hwcap %#x: not read from the task's auxv", m.GetHeader().GetPageSize(), m.GetHwcap())
			}
			v := Decide(m, tc.h)
			if v.GetKind() != tc.kind || !slices.Equal(sorted(Codes(v)), sorted(tc.codes)) {
				t.Errorf("%s, want %v %v", NewReport(v), tc.kind, tc.codes)
			}
		})
	}
}

func TestNewManifestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		task *image.Task
		want error
	}{
		{"nil", nil, ErrIncompleteTask},
		{"no header", &image.Task{}, ErrIncompleteTask},
		{"unknown arch", &image.Task{Header: &image.Header{}}, ErrIncompleteTask},
		{"no threads", &image.Task{Header: &image.Header{Arch: image.Arch_ARCH_AMD64}}, ErrIncompleteTask},
		{"bad regset", with(i386Task(), func(t *image.Task) { t.Threads[1].Regsets[0].Data = make([]byte, 216) }), ErrRegsetLayout},
		{"auxv without AT_NULL", with(i386Task(), func(t *image.Task) { t.Mm.Auxv = t.Mm.Auxv[:len(t.Mm.Auxv)-8] }), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewManifest(tc.task); !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzNewManifest: a Task arrives from a peer (the final state before
// Prepared); whatever its bytes, NewManifest answers or errs without a
// panic, and Decide takes whatever it answers.
func FuzzNewManifest(f *testing.F) {
	for _, task := range []*image.Task{i386Task(), ppcTask(image.Arch_ARCH_PPC64LE, hwcap2Power10),
		ppcTask(image.Arch_ARCH_PPC64, hwcap2Power9), ppcTask(image.Arch_ARCH_PPC32, hwcap2Power9)} {
		b, err := proto.Marshal(task)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		task := &image.Task{}
		if err := proto.Unmarshal(b, task); err != nil {
			return
		}
		m, err := NewManifest(task)
		if err != nil {
			return
		}
		if v := Decide(m, hostP9BE()); v.GetKind() == image.Verdict_KIND_UNSPECIFIED {
			t.Fatal("no verdict")
		}
	})
}
