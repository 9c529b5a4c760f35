package powerpc

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/migrated/migrated/arch"
)

// The register dumps were captured in the POWER QEMU guests by
// e2e/power (see e2e/power/testdata/README.md for how, and for the values
// the capture program loads before its "trap").
const dumpDir = "../../e2e/power/testdata"

// dumpedSet is one "regset" record of a dump: the bytes the kernel
// returned, or the errno of PTRACE_GETREGSET.
type dumpedSet struct {
	name  string
	data  []byte
	errno int
}

// parseRegDump reads the text format of e2e/power/testdata/README.md.
func parseRegDump(path string) (map[uint32]*dumpedSet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sets := map[uint32]*dumpedSet{}
	var cur *dumpedSet
	var want int
	ended := false
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		fields := strings.Fields(t)
		switch {
		case t == "" || strings.HasPrefix(t, "#"):
		case t == "end":
			ended = true
		case fields[0] == "regset":
			if cur != nil && cur.errno == 0 && len(cur.data) != want {
				return nil, fmt.Errorf("%s:%d: %s has %d bytes, header said %d", path, line, cur.name, len(cur.data), want)
			}
			if len(fields) < 5 {
				return nil, fmt.Errorf("%s:%d: short regset line", path, line)
			}
			note, err := strconv.ParseUint(fields[2], 0, 32)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line, err)
			}
			n, err := strconv.Atoi(fields[4])
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line, err)
			}
			cur = &dumpedSet{name: fields[1]}
			switch fields[3] {
			case "len":
				want = n
			case "errno":
				cur.errno = n
			default:
				return nil, fmt.Errorf("%s:%d: want len or errno, got %q", path, line, fields[3])
			}
			sets[uint32(note)] = cur
		default:
			if cur == nil || cur.errno != 0 || len(fields) != 2 {
				return nil, fmt.Errorf("%s:%d: unexpected line %q", path, line, t)
			}
			off, err := strconv.ParseUint(fields[0], 16, 32)
			if err != nil || int(off) != len(cur.data) {
				return nil, fmt.Errorf("%s:%d: offset %q, want %#x", path, line, fields[0], len(cur.data))
			}
			b, err := hex.DecodeString(fields[1])
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line, err)
			}
			cur.data = append(cur.data, b...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil && cur.errno == 0 && len(cur.data) != want {
		return nil, fmt.Errorf("%s: %s has %d bytes, header said %d", path, cur.name, len(cur.data), want)
	}
	if !ended {
		return nil, fmt.Errorf("%s: no end line (truncated capture)", path)
	}
	return sets, nil
}

// MSR bits (arch/powerpc/include/asm/reg.h: MSR_SF_LG 63, MSR_PR_LG 14,
// MSR_LE_LG 0).
const (
	msrSF = 1 << 63
	msrPR = 1 << 14
	msrLE = 1 << 0
)

// Errnos PTRACE_GETREGSET gives for a set the task or the kernel does not
// have (include/uapi/asm-generic/errno-base.h, errno.h): the engine skips
// an optional set on these.
const (
	errENODEV  = 19
	errEINVAL  = 22
	errENODATA = 61
)

func TestGoldenRegDumps(t *testing.T) {
	for _, tc := range []struct {
		file string
		a    *Power
		// what the other arch of the same host makes of this dump
		other *Power
	}{
		{"regs-ppc64le.txt", PPC64LE, PPC32},
		{"regs-ppc64.txt", PPC64, PPC32},
		{"regs-ppc32.txt", PPC32, PPC64},
	} {
		t.Run(tc.a.Name(), func(t *testing.T) {
			path := filepath.Join(dumpDir, tc.file)
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				t.Skipf("%s not captured yet (make e2e-power with -update writes it)", path)
			}
			sets, err := parseRegDump(path)
			if err != nil {
				t.Fatal(err)
			}
			a, o := tc.a, tc.a.ByteOrder()
			gpr := sets[arch.NT_PRSTATUS]
			if gpr == nil || gpr.errno != 0 {
				t.Fatalf("no NT_PRSTATUS in %s", path)
			}
			// The length is how the engine tells the task arch (detectArch).
			if len(gpr.data) != a.GPRSize() {
				t.Fatalf("NT_PRSTATUS %d bytes, %s wants %d", len(gpr.data), a.Name(), a.GPRSize())
			}
			if _, err := tc.other.DecodeRegs(gpr.data); !errors.Is(err, arch.ErrRegsetSize) {
				t.Errorf("%s decoded a %s NT_PRSTATUS: err %v", tc.other.Name(), a.Name(), err)
			}
			r, err := a.DecodeRegs(append([]byte(nil), gpr.data...))
			if err != nil {
				t.Fatal(err)
			}
			rr := r.(*regs)
			w := uint64(a.WordSize())

			// r14..r29 as powercheck regs-child loads them.
			for n := uint64(14); n <= 29; n++ {
				want := 0xA5A50000_00000000 | n<<8 | n
				if w == 4 {
					want = 0xA5A50000 | n<<8 | n
				}
				if got := rr.get(int(n)); got != want {
					t.Errorf("r%d = %#x, want %#x", n, got, want)
				}
			}
			wantCTR := uint64(0xC7C70000_00000C0C)
			if w == 4 {
				wantCTR = 0xC7C70C0C
			}
			for _, c := range []struct {
				name      string
				got, want uint64
			}{
				{"ctr", rr.get(ptCTR), wantCTR},
				{"ccr", rr.get(ptCCR), 0x12345678},
				{"xer", rr.get(ptXER), 0x20000000},
				// A "trap" instruction enters the kernel as a program check.
				{"trap", rr.get(ptTrap), trapProgram},
			} {
				if c.got != c.want {
					t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
				}
			}
			msr := rr.get(ptMSR)
			if msr&msrPR == 0 {
				t.Errorf("msr %#x: not problem state (user mode)", msr)
			}
			if le := msr&msrLE != 0; le != (o == binary.ByteOrder(binary.LittleEndian)) {
				t.Errorf("msr %#x: LE bit %v for a %s task", msr, le, a.Name())
			}
			if w == 8 && msr&msrSF == 0 {
				t.Errorf("msr %#x: a 64-bit task without MSR_SF", msr)
			}
			if r.PC() < 0x10000000 || r.PC()%4 != 0 {
				t.Errorf("pc %#x: not an instruction in the program's text", r.PC())
			}
			if r.SP() == 0 || r.SP()%16 != 0 {
				t.Errorf("sp %#x: not a 16-byte aligned stack pointer", r.SP())
			}
			// The thread pointer points 0x7000 past the TCB (TLS_TCB_OFFSET
			// in glibc), 16-byte aligned on every POWER ABI.
			tp := rr.get(ptR13)
			if w == 4 {
				tp = rr.get(ptR2)
			}
			if r.TLS() != tp || tp == 0 || tp%16 != 0 {
				t.Errorf("TLS %#x (thread pointer register %#x): not a thread pointer", r.TLS(), tp)
			}
			if nr, _, ok := r.InSyscall(); ok {
				t.Errorf("stopped at a trap, InSyscall says syscall %d", nr)
			}
			if what := r.FixRestart(); what != "" {
				t.Errorf("FixRestart on a trap stop: %q", what)
			}
			if !equalBytes(r.Bytes(), gpr.data) {
				t.Error("decoding or reading changed the buffer")
			}

			// Every set the arch lists is either present or absent for a
			// reason the engine skips; the required ones are present.
			listed := map[uint32]bool{}
			for _, rs := range a.Regsets() {
				listed[rs.Note] = true
				s := sets[rs.Note]
				if s == nil {
					t.Errorf("%s (%#x) not in the dump", rs.Name, rs.Note)
					continue
				}
				switch {
				case rs.Required && s.errno != 0:
					t.Errorf("required %s: errno %d", rs.Name, s.errno)
				case s.errno != 0 && s.errno != errENODEV && s.errno != errEINVAL && s.errno != errENODATA:
					t.Errorf("optional %s: errno %d would not be skipped", rs.Name, s.errno)
				}
			}
			if !listed[arch.NT_PPC_VSX] {
				if s := sets[arch.NT_PPC_VSX]; s == nil || s.errno != errEINVAL {
					t.Errorf("%s lists no VSX set but the kernel has one: %+v", a.Name(), s)
				}
			}

			// The other sets, read in the task's byte order: they show the
			// order Regsets' owners must use.
			u64 := func(note uint32, off int) uint64 {
				s := sets[note]
				if s == nil || s.errno != 0 || len(s.data) < off+8 {
					t.Fatalf("set %#x: no 8 bytes at %d", note, off)
				}
				return o.Uint64(s.data[off:])
			}
			for n := uint64(0); n < 32; n++ {
				if got, want := u64(arch.NT_PRFPREG, int(8*n)), 0xF0F00000_00000000|n<<8|n; got != want {
					t.Errorf("fpr%d = %#x, want %#x", n, got, want)
				}
				if w == 8 {
					if got, want := u64(arch.NT_PPC_VSX, int(8*n)), 0x5A5A0000_00000000|n<<8|n; got != want {
						t.Errorf("vsr%d dw1 = %#x, want %#x", n, got, want)
					}
				}
				vmx := sets[arch.NT_PPC_VMX].data
				for j := uint64(0); j < 4; j++ {
					got := o.Uint32(vmx[16*n+4*j:])
					if want := uint32(0xB0000000 | n<<8 | j); got != want {
						t.Errorf("v%d word %d = %#x, want %#x", n, j, got, want)
					}
				}
			}
			vmx := sets[arch.NT_PPC_VMX].data
			vscrOff := 32*16 + 12 // the low-order word of the VSCR quadword
			if o == binary.ByteOrder(binary.LittleEndian) {
				vscrOff = 32 * 16
			}
			for _, c := range []struct {
				name      string
				got, want uint64
			}{
				{"fpscr", u64(arch.NT_PRFPREG, 32*8), 0x1},
				{"vscr", uint64(o.Uint32(vmx[vscrOff:])), 0x00010000},
				{"vrsave", uint64(o.Uint32(vmx[33*16:])), 0xA5A5F00D},
				{"dscr", u64(arch.NT_PPC_DSCR, 0), 0x11},
				{"tar", u64(arch.NT_PPC_TAR, 0), 0x7A7A0800},
				{"ppr", u64(arch.NT_PPC_PPR, 0), 0x0008000000000000},
			} {
				if c.got != c.want {
					t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
				}
			}
		})
	}
}

func equalBytes(a, b []byte) bool { return string(a) == string(b) }
