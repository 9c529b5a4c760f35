package compat

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/migrated/migrated/image"
)

// words returns n words of size w in order o, word i holding base+i, so a
// decoder that takes a field from the wrong index is caught by its value.
func words(o binary.ByteOrder, w, n int, base uint32) []byte {
	b := make([]byte, w*n)
	for i := 0; i < n; i++ {
		if w == 4 {
			o.PutUint32(b[i*4:], base+uint32(i))
		} else {
			o.PutUint64(b[i*8:], uint64(base)+uint64(i))
		}
	}
	return b
}

func TestI386RegsLayout(t *testing.T) {
	raw := words(le, 4, 17, 0x100)
	r, err := DecodeI386Regs(raw)
	if err != nil {
		t.Fatal(err)
	}
	// struct user_regs_struct32 order (arch/x86/include/asm/user32.h).
	want := I386Regs{EBX: 0x100, ECX: 0x101, EDX: 0x102, ESI: 0x103, EDI: 0x104, EBP: 0x105, EAX: 0x106,
		DS: 0x107, ES: 0x108, FS: 0x109, GS: 0x10a, OrigEAX: 0x10b, EIP: 0x10c, CS: 0x10d, EFLAGS: 0x10e, ESP: 0x10f, SS: 0x110}
	if *r != want {
		t.Errorf("decoded %+v\nwant    %+v", *r, want)
	}
	if !bytes.Equal(r.Encode(), raw) {
		t.Error("encode(decode(x)) != x")
	}
	cpu := (&I386Regs{EIP: 0x8049000, ESP: 0xffffd000, OrigEAX: 0xffffffff, EAX: 0xfffffdfc, GS: 0x63}).CPU()
	if cpu.Pc != 0x8049000 || cpu.Sp != 0xffffd000 || cpu.SyscallNr != -1 || cpu.SyscallRet != -516 || cpu.Tls != 0x63 {
		t.Errorf("CPU() = %+v", cpu)
	}
}

func TestI387RegsLayout(t *testing.T) {
	raw := make([]byte, SizeI387FPRegs)
	for i := range raw {
		raw[i] = byte(i)
	}
	r, err := DecodeI387Regs(raw)
	if err != nil {
		t.Fatal(err)
	}
	if r.CWD != 0x03020100 || r.FOS != 0x1b1a1918 || r.ST[0][0] != 28 || r.ST[7][9] != 107 {
		t.Errorf("decoded %+v", r)
	}
	if !bytes.Equal(r.Encode(), raw) {
		t.Error("encode(decode(x)) != x")
	}
}

func TestPPC32RegsLayout(t *testing.T) {
	raw := words(be, 4, 48, 0x1000)
	r, err := DecodePPC32Regs(raw)
	if err != nil {
		t.Fatal(err)
	}
	// PT_* indices of arch/powerpc/include/uapi/asm/ptrace.h.
	for name, c := range map[string]struct{ got, want uint32 }{
		"r0": {r.GPR[0], 0x1000}, "r1": {r.GPR[1], 0x1001}, "r31": {r.GPR[31], 0x101f},
		"nip": {r.NIP, 0x1020}, "msr": {r.MSR, 0x1021}, "orig_gpr3": {r.OrigGPR3, 0x1022},
		"ctr": {r.CTR, 0x1023}, "link": {r.Link, 0x1024}, "xer": {r.XER, 0x1025}, "ccr": {r.CCR, 0x1026},
		"softe": {r.Softe, 0x1027}, "trap": {r.Trap, 0x1028}, "dar": {r.DAR, 0x1029},
		"dsisr": {r.DSISR, 0x102a}, "result": {r.Result, 0x102b}, "pad0": {r.Pad[0], 0x102c}, "pad3": {r.Pad[3], 0x102f},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", name, c.got, c.want)
		}
	}
	if !bytes.Equal(r.Encode(), raw) {
		t.Error("encode(decode(x)) != x")
	}
	// The kernel writes big-endian words for a ppc32 task: the first byte
	// of r0 is its most significant.
	if raw[3] != 0x00 || raw[2] != 0x10 {
		t.Fatalf("test data not big-endian")
	}
	inSyscall := &PPC32Regs{NIP: 0x10000100, Trap: 0xc01}
	inSyscall.GPR[0], inSyscall.GPR[1], inSyscall.GPR[2], inSyscall.GPR[3] = 162, 0x7fff0000, 0x10020000, 4
	if cpu := inSyscall.CPU(); cpu.SyscallNr != 162 || cpu.Sp != 0x7fff0000 || cpu.Tls != 0x10020000 || cpu.Pc != 0x10000100 || cpu.SyscallRet != 4 {
		t.Errorf("CPU() = %+v", cpu)
	}
	if cpu := (&PPC32Regs{Trap: 0x900}).CPU(); cpu.SyscallNr != -1 {
		t.Errorf("CPU() outside a syscall: nr %d", cpu.SyscallNr)
	}
}

func TestPPCFPRegs(t *testing.T) {
	for _, o := range []binary.ByteOrder{be, le} {
		raw := words(o, 8, 33, 0x3ff00000)
		r, err := DecodePPCFPRegs(o, raw)
		if err != nil {
			t.Fatal(err)
		}
		if r.FPR[0] != 0x3ff00000 || r.FPR[31] != 0x3ff0001f || r.FPSCR != 0x3ff00020 {
			t.Errorf("%v: decoded %+v", o, r)
		}
		if !bytes.Equal(r.Encode(o), raw) {
			t.Errorf("%v: encode(decode(x)) != x", o)
		}
	}
}

func TestRegsWrongSize(t *testing.T) {
	for _, n := range []int{0, 1, 67, 69, 192, 384} {
		if _, err := DecodeI386Regs(make([]byte, n)); !errors.Is(err, ErrSize) {
			t.Errorf("i386 %d bytes: %v", n, err)
		}
	}
	for _, n := range []int{0, 68, 191, 193, 384} {
		if _, err := DecodePPC32Regs(make([]byte, n)); !errors.Is(err, ErrSize) {
			t.Errorf("ppc32 %d bytes: %v", n, err)
		}
	}
	if _, err := DecodeI387Regs(make([]byte, 512)); !errors.Is(err, ErrSize) {
		t.Errorf("i387 512 bytes: %v", err)
	}
	if _, err := DecodePPCFPRegs(be, make([]byte, 256)); !errors.Is(err, ErrSize) {
		t.Errorf("ppc fp 256 bytes: %v", err)
	}
}

// Golden register dumps: testdata/regs/<name>.bin is a register set in the
// layout a 64-bit tracer reads; <name>.txt is its decoded form. Files named
// *-synthetic are composed from documented values (syntheticGoldens, see
// testdata/regs/README.md); captured ones (TestCaptureI386 where the kernel
// runs i386 tasks, the POWER guests for ppc32) sit beside them.
func TestGoldenRegs(t *testing.T) {
	if os.Getenv("MIGRATED_UPDATE_GOLDEN") != "" {
		for name, r := range syntheticGoldens() {
			writeGoldenFile(t, name, r.raw, r.text)
		}
	}
	files, err := filepath.Glob("testdata/regs/*.bin")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden register dumps in testdata/regs")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			text, enc, err := decodeGolden(filepath.Base(f), raw)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, raw) {
				t.Errorf("encode(decode(x)) != x\n%s\n%s", hex.Dump(raw), hex.Dump(enc))
			}
			want, err := os.ReadFile(strings.TrimSuffix(f, ".bin") + ".txt")
			if err != nil {
				t.Fatal(err)
			}
			if text != string(want) {
				t.Errorf("decoded\n%s\nwant\n%s", text, want)
			}
		})
	}
}

// decodeGolden decodes a golden dump by its file name prefix and renders it.
func decodeGolden(name string, raw []byte) (text string, reencoded []byte, err error) {
	switch {
	case strings.HasPrefix(name, "i386-prstatus"):
		r, err := DecodeI386Regs(raw)
		if err != nil {
			return "", nil, err
		}
		return fmtStruct(r), r.Encode(), nil
	case strings.HasPrefix(name, "i386-fpregs"):
		r, err := DecodeI387Regs(raw)
		if err != nil {
			return "", nil, err
		}
		return fmtStruct(r), r.Encode(), nil
	case strings.HasPrefix(name, "ppc32-prstatus"):
		r, err := DecodePPC32Regs(raw)
		if err != nil {
			return "", nil, err
		}
		return fmtStruct(r), r.Encode(), nil
	}
	return "", nil, errors.New("no decoder for " + name)
}

// fmtStruct renders a register struct one field a line, in hex, arrays
// element by element: the golden text a person can check against a dump.
func fmtStruct(v any) string {
	var b strings.Builder
	rv := reflect.Indirect(reflect.ValueOf(v))
	for i := 0; i < rv.NumField(); i++ {
		name, f := rv.Type().Field(i).Name, rv.Field(i)
		switch {
		case f.Kind() == reflect.Array && f.Type().Elem().Kind() == reflect.Array:
			for j := 0; j < f.Len(); j++ {
				fmt.Fprintf(&b, "%s[%d] %x\n", name, j, f.Index(j).Interface())
			}
		case f.Kind() == reflect.Array:
			for j := 0; j < f.Len(); j++ {
				fmt.Fprintf(&b, "%s[%d] %#x\n", name, j, f.Index(j).Uint())
			}
		default:
			fmt.Fprintf(&b, "%s %#x\n", name, f.Uint())
		}
	}
	return b.String()
}

type compatCase struct {
	name string
	abi  CompatABI
}

var compatABIs = []compatCase{{"i386", CompatI386}, {"ppc32", CompatPPC32}}

// Values of the unit tests, also the fuzzers' seeds.
var (
	sigactionSeed = &image.SigAction{Signo: 10, Handler: 0x08049a10, Flags: 0x14000004, Restorer: 0xf7f9c560, Mask: 1<<9 | 1<<33}
	stackSeed     = &image.SigAltStack{Sp: 0xf7a00000, Flags: 0, Size: 65536}
	rlimitSeed    = &image.Rlimit{Resource: 3, Cur: 8 << 20, Max: RlimInfinity}
	itimerSeed    = &image.ITimer{Which: 0, IntervalNs: 1e9, ValueNs: 250e6}
)

func TestCompatSigaction(t *testing.T) {
	sa := sigactionSeed
	for _, c := range compatABIs {
		b, err := c.abi.EncodeSigaction(sa)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != SizeCompatSigaction {
			t.Fatalf("%s: %d bytes", c.name, len(b))
		}
		// sa_mask sig[0] holds signals 1-32 and comes first.
		if got := c.abi.Order.Uint32(b[12:]); got != 1<<9 {
			t.Errorf("%s: sig[0] = %#x", c.name, got)
		}
		if got := c.abi.Order.Uint32(b[16:]); got != 1<<1 {
			t.Errorf("%s: sig[1] = %#x", c.name, got)
		}
		if got := c.abi.Order.Uint32(b); got != 0x08049a10 {
			t.Errorf("%s: sa_handler = %#x", c.name, got)
		}
		back, err := c.abi.DecodeSigaction(10, b)
		if err != nil || !proto.Equal(back, sa) {
			t.Errorf("%s: round trip %v, %v", c.name, back, err)
		}
	}
	if b, _ := CompatPPC32.EncodeSigaction(sa); b[0] != 0x08 {
		t.Errorf("ppc32 sigaction not big-endian: % x", b[:4])
	}
	if b, _ := CompatI386.EncodeSigaction(sa); b[0] != 0x10 {
		t.Errorf("i386 sigaction not little-endian: % x", b[:4])
	}
	for _, bad := range []*image.SigAction{{Handler: 1 << 32}, {Flags: 1 << 40}, {Restorer: math.MaxUint64}} {
		if _, err := CompatI386.EncodeSigaction(bad); !errors.Is(err, ErrCompatRange) {
			t.Errorf("EncodeSigaction(%v): %v", bad, err)
		}
	}
}

func TestCompatStack(t *testing.T) {
	for _, c := range compatABIs {
		for _, s := range []*image.SigAltStack{
			stackSeed,
			{Flags: 2},                               // SS_DISABLE
			{Sp: 0x1000, Flags: 1 << 31, Size: 8192}, // SS_AUTODISARM
		} {
			b, err := c.abi.EncodeStack(s)
			if err != nil {
				t.Fatal(err)
			}
			back, err := c.abi.DecodeStack(b)
			if err != nil || !proto.Equal(back, s) {
				t.Errorf("%s: %v -> % x -> %v, %v", c.name, s, b, back, err)
			}
		}
		if _, err := c.abi.EncodeStack(&image.SigAltStack{Sp: 0x7fff00000000}); !errors.Is(err, ErrCompatRange) {
			t.Errorf("%s: 64-bit ss_sp: %v", c.name, err)
		}
	}
}

func TestCompatRlimit(t *testing.T) {
	for _, c := range compatABIs {
		for _, tc := range []struct {
			r      *image.Rlimit
			cur    uint32
			rangeE bool
		}{
			{&image.Rlimit{Resource: 7, Cur: 1024, Max: 4096}, 1024, false},
			{rlimitSeed, 8 << 20, false},
			{&image.Rlimit{Resource: 9, Cur: RlimInfinity, Max: RlimInfinity}, CompatRlimInfinity, false},
			{&image.Rlimit{Resource: 9, Cur: 8 << 30, Max: RlimInfinity}, 0, true},
			{&image.Rlimit{Resource: 9, Cur: CompatRlimInfinity, Max: RlimInfinity}, 0, true},
		} {
			b, err := c.abi.EncodeRlimit(tc.r)
			if tc.rangeE {
				if !errors.Is(err, ErrCompatRange) {
					t.Errorf("%s: %v: err %v, want ErrCompatRange", c.name, tc.r, err)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.abi.Order.Uint32(b); got != tc.cur {
				t.Errorf("%s: rlim_cur %#x, want %#x", c.name, got, tc.cur)
			}
			back, err := c.abi.DecodeRlimit(tc.r.GetResource(), b)
			if err != nil || !proto.Equal(back, tc.r) {
				t.Errorf("%s: round trip %v -> %v, %v", c.name, tc.r, back, err)
			}
		}
	}
}

func TestCompatItimerval(t *testing.T) {
	for _, c := range compatABIs {
		for _, tc := range []struct {
			in, want *image.ITimer
			err      error
		}{
			{itimerSeed, itimerSeed, nil},
			{&image.ITimer{Which: 1}, &image.ITimer{Which: 1}, nil},
			// 300 ns left stays armed: rounded up to 1 us.
			{&image.ITimer{Which: 2, ValueNs: 300}, &image.ITimer{Which: 2, ValueNs: 1000}, nil},
			{&image.ITimer{Which: 0, IntervalNs: 1500, ValueNs: 2_000_000_001}, &image.ITimer{Which: 0, IntervalNs: 2000, ValueNs: 2_000_001_000}, nil},
			{&image.ITimer{ValueNs: -1}, nil, ErrCompatValue},
			{&image.ITimer{ValueNs: math.MaxInt64}, nil, ErrCompatRange},
		} {
			b, err := c.abi.EncodeItimerval(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Errorf("%s: %v: err %v, want %v", c.name, tc.in, err, tc.err)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			back, err := c.abi.DecodeItimerval(tc.in.GetWhich(), b)
			if err != nil || !proto.Equal(back, tc.want) {
				t.Errorf("%s: %v -> % x -> %v, %v", c.name, tc.in, b, back, err)
			}
		}
		bad := make([]byte, 16)
		c.abi.Order.PutUint32(bad[4:], 1e6) // tv_usec of a million
		if _, err := c.abi.DecodeItimerval(0, bad); !errors.Is(err, ErrCompatValue) {
			t.Errorf("%s: usec 1e6: %v", c.name, err)
		}
	}
}

func TestCompatRobustList(t *testing.T) {
	h := CompatRobustListHead{Next: 0xf7d4a6e4, FutexOffset: -20, ListOpPending: 0}
	for _, c := range compatABIs {
		b := c.abi.EncodeRobustListHead(h)
		if len(b) != SizeCompatRobustListHead {
			t.Fatalf("%d bytes", len(b))
		}
		back, err := c.abi.DecodeRobustListHead(b)
		if err != nil || back != h {
			t.Errorf("%s: %+v -> %+v, %v", c.name, h, back, err)
		}
		for _, tc := range []struct {
			r  *image.RobustList
			ok bool
		}{
			{&image.RobustList{}, true},
			{&image.RobustList{Head: 0xf7d4a6e4, Len: 12}, true},
			{&image.RobustList{Head: 0xf7d4a6e4, Len: 24}, false}, // the 64-bit head's size
			{&image.RobustList{Head: 0x7ffff7d4a6e4, Len: 12}, false},
		} {
			if err := c.abi.CheckRobustList(tc.r); (err == nil) != tc.ok {
				t.Errorf("%s: CheckRobustList(%v) = %v", c.name, tc.r, err)
			}
		}
	}
}

func TestCompatSigset(t *testing.T) {
	for _, c := range compatABIs {
		for _, m := range []uint64{0, 1, 1 << 31, 1 << 32, math.MaxUint64} {
			got, err := c.abi.DecodeSigset(c.abi.EncodeSigset(m))
			if err != nil || got != m {
				t.Errorf("%s: %#x -> %#x, %v", c.name, m, got, err)
			}
		}
	}
}

func TestCompatABIOf(t *testing.T) {
	if a, err := CompatABIOf(image.Arch_ARCH_PPC32); err != nil || a.Order != binary.ByteOrder(binary.BigEndian) {
		t.Errorf("ppc32: %v %v", a, err)
	}
	if a, err := CompatABIOf(image.Arch_ARCH_I386); err != nil || a.Order != binary.ByteOrder(binary.LittleEndian) {
		t.Errorf("i386: %v %v", a, err)
	}
	if _, err := CompatABIOf(image.Arch_ARCH_AMD64); err == nil {
		t.Error("amd64 has no compat layout")
	}
}

type golden struct {
	raw  []byte
	text string
}

// syntheticGoldens composes register sets of threads stopped in a sleep,
// value by value from the kernel's definitions. They are fixtures, not
// captures: they pin the byte layout, and real dumps join them when a
// machine that runs such tasks captures them.
func syntheticGoldens() map[string]golden {
	i386 := &I386Regs{
		EBX: 0, ECX: 0, EDX: 0xffd3c0f8, ESI: 0xffd3c0f8, EDI: 0, EBP: 0xffd3c138,
		EAX: 0xfffffdfc,                      // -ERESTART_RESTARTBLOCK
		DS:  0x2b, ES: 0x2b, FS: 0, GS: 0x63, // __USER_DS, TLS entry 12
		OrigEAX: 407,        // clock_nanosleep_time64
		EIP:     0xf7f8b549, // in __kernel_vsyscall of the 32-bit vDSO
		CS:      0x23, EFLAGS: 0x246, ESP: 0xffd3c0cc, SS: 0x2b,
	}
	x87 := &I387Regs{CWD: 0xffff037f, SWD: 0xffff0000, TWD: 0xffffffff, FIP: 0x08049a3c, FCS: 0x05dc0023, FOO: 0x080e5f08, FOS: 0xffff002b}
	x87.ST[0] = [10]byte{0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0x3f} // 1.5
	ppc := &PPC32Regs{NIP: 0x100243f0, MSR: 0xd032, OrigGPR3: 0x7fb9f3b8, CTR: 0x10024300, Link: 0x10001a34,
		XER: 0, CCR: 0x24000222, Softe: 1, Trap: 0xc00}
	ppc.GPR[0], ppc.GPR[1], ppc.GPR[2], ppc.GPR[3], ppc.GPR[4] = 162, 0x7fb9f3a0, 0x1001d4c0, 0x7fb9f3b8, 0x7fb9f3b8
	return map[string]golden{
		"i386-prstatus-synthetic":  {i386.Encode(), fmtStruct(i386)},
		"i386-fpregs-synthetic":    {x87.Encode(), fmtStruct(x87)},
		"ppc32-prstatus-synthetic": {ppc.Encode(), fmtStruct(ppc)},
	}
}

func writeGoldenFile(t *testing.T, name string, raw []byte, text string) {
	t.Helper()
	dir := filepath.Join("testdata", "regs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".bin"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".txt"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
