package powerpc

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/migrated/migrated/arch"
)

// codeAt is where restore/restore.go expects the stub code: right after
// the ELF and program headers.
func codeAt(a *Power) uint64 {
	if a.WordSize() == 8 {
		return 64 + 56
	}
	return 52 + 32
}

func TestStubELF(t *testing.T) {
	for _, tc := range []struct {
		a        *Power
		base     uint64
		class    elf.Class
		data     elf.Data
		machine  elf.Machine
		flags    uint32
		pageSize uint64
	}{
		{PPC64LE, 0x7fff_8000_0000, elf.ELFCLASS64, elf.ELFDATA2LSB, elf.EM_PPC64, 2, 64 << 10},
		{PPC64, 0x7fff_8000_0000, elf.ELFCLASS64, elf.ELFDATA2MSB, elf.EM_PPC64, 1, 64 << 10},
		{PPC32, 0xf000_0000, elf.ELFCLASS32, elf.ELFDATA2MSB, elf.EM_PPC, 0, 64 << 10},
		{PPC64LE, 0x1_0000_1000, elf.ELFCLASS64, elf.ELFDATA2LSB, elf.EM_PPC64, 2, 4 << 10},
		{PPC32, 0x1000_0000, elf.ELFCLASS32, elf.ELFDATA2MSB, elf.EM_PPC, 0, 4 << 10},
	} {
		a := tc.a
		raw, err := a.StubELF(tc.base, tc.pageSize)
		if err != nil {
			t.Fatalf("%s: %v", a.Name(), err)
		}
		f, err := elf.NewFile(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: debug/elf: %v", a.Name(), err)
		}
		if f.Class != tc.class || f.Data != tc.data || f.Machine != tc.machine || f.Type != elf.ET_EXEC {
			t.Errorf("%s: class %v data %v machine %v type %v", a.Name(), f.Class, f.Data, f.Machine, f.Type)
		}
		if got := flags(raw, a); got != tc.flags {
			t.Errorf("%s: e_flags %d, want %d", a.Name(), got, tc.flags)
		}
		if len(f.Progs) != 1 {
			t.Fatalf("%s: %d program headers", a.Name(), len(f.Progs))
		}
		p := f.Progs[0]
		if p.Type != elf.PT_LOAD || p.Flags != elf.PF_R|elf.PF_X || p.Vaddr != tc.base || p.Off != 0 ||
			p.Filesz != uint64(len(raw)) || p.Memsz != p.Filesz || p.Align != tc.pageSize {
			t.Errorf("%s: segment %+v", a.Name(), p.ProgHeader)
		}
		o := a.ByteOrder()
		code := raw[codeAt(a):]
		insn := func(off uint64) uint32 { return o.Uint32(code[off:]) }
		if insn(stubTrapOff) != insnTrap || insn(stubSCOff) != insnSC || insn(8) != insnTrap {
			t.Errorf("%s: code % x, want trap; sc; trap", a.Name(), code[:12])
		}
		// The gadget restore/restore.go computes is the arch's Gadget.
		if g := raw[codeAt(a)+4:][:4]; !bytes.Equal(g, a.Gadget()) {
			t.Errorf("%s: bytes at code+4 % x are not the gadget % x", a.Name(), g, a.Gadget())
		}
		trapAddr := tc.base + codeAt(a) + stubTrapOff
		if a.ABI() == arch.ABIPPC64ELFv1 {
			// e_entry is a function descriptor whose first word is the
			// entry: the trap.
			off := f.Entry - tc.base
			if f.Entry%8 != 0 || off+24 > uint64(len(raw)) {
				t.Fatalf("%s: entry %#x is not a descriptor in the segment", a.Name(), f.Entry)
			}
			if got := o.Uint64(raw[off:]); got != trapAddr {
				t.Errorf("%s: descriptor entry %#x, want the trap at %#x", a.Name(), got, trapAddr)
			}
			if toc := o.Uint64(raw[off+8:]); toc != 0 {
				t.Errorf("%s: descriptor TOC %#x", a.Name(), toc)
			}
		} else if f.Entry != trapAddr {
			t.Errorf("%s: entry %#x, want the trap at %#x", a.Name(), f.Entry, trapAddr)
		}
	}
}

func flags(raw []byte, a *Power) uint32 {
	if a.WordSize() == 8 {
		return a.ByteOrder().Uint32(raw[48:])
	}
	return a.ByteOrder().Uint32(raw[36:])
}

func TestStubELFRejects(t *testing.T) {
	for _, tc := range []struct {
		a              *Power
		base, pageSize uint64
	}{
		{PPC64LE, 0x7fff_8000_1000, 64 << 10}, // not 64 KiB aligned
		{PPC64, 0x1000, 0},
		{PPC32, 0x1_0000_0000, 64 << 10}, // above 4 GiB
	} {
		if _, err := tc.a.StubELF(tc.base, tc.pageSize); err == nil {
			t.Errorf("%s: StubELF(%#x, %d) accepted", tc.a.Name(), tc.base, tc.pageSize)
		}
	}
}

// TestStubDisassembly reads the stub's code back with binutils for the
// target, when the cross toolchain is installed (Debian:
// binutils-powerpc64le-linux-gnu, binutils-powerpc64-linux-gnu,
// binutils-powerpc-linux-gnu).
func TestStubDisassembly(t *testing.T) {
	for _, tc := range []struct {
		a       *Power
		objdump string
		machine string
		endian  string
	}{
		{PPC64LE, "powerpc64le-linux-gnu-objdump", "powerpc:common64", "-EL"},
		{PPC64, "powerpc64-linux-gnu-objdump", "powerpc:common64", "-EB"},
		{PPC32, "powerpc-linux-gnu-objdump", "powerpc:common", "-EB"},
	} {
		t.Run(tc.a.Name(), func(t *testing.T) {
			tool, err := exec.LookPath(tc.objdump)
			if err != nil {
				t.Skipf("%s not installed (Debian binutils cross package): %v", tc.objdump, err)
			}
			raw, err := tc.a.StubELF(0x10000000, 64<<10)
			if err != nil {
				t.Fatal(err)
			}
			got, out := disassemble(t, tool, tc.machine, tc.endian, raw[codeAt(tc.a):][:12])
			want := []string{"0 trap", "4 sc", "8 trap"}
			if strings.Join(got, "; ") != strings.Join(want, "; ") {
				t.Errorf("disassembly %q, want %q\n%s", got, want, out)
			}
		})
	}
}

// TestStubRunsUnderQEMUUser executes each stub with QEMU's user-mode
// emulator (Debian: qemu-user): the loader must accept the ELF, and the
// entry (through the function descriptor for ELFv1) must land on the trap,
// so the stub dies of SIGTRAP having made no system call. A wrong entry
// runs the descriptor or the headers as code and dies of SIGILL or
// SIGSEGV instead.
func TestStubRunsUnderQEMUUser(t *testing.T) {
	for _, tc := range []struct {
		a    *Power
		qemu string
	}{
		{PPC64LE, "qemu-ppc64le"},
		{PPC64, "qemu-ppc64"},
		{PPC32, "qemu-ppc"},
	} {
		t.Run(tc.a.Name(), func(t *testing.T) {
			tool, err := exec.LookPath(tc.qemu)
			if err != nil {
				t.Skipf("%s not installed (Debian qemu-user): %v", tc.qemu, err)
			}
			raw, err := tc.a.StubELF(0x10000000, 64<<10)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "stub")
			if err := os.WriteFile(path, raw, 0o755); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, tool, "-strace", path)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err = cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("%s: %v (want death by SIGTRAP)\n%s", tc.qemu, err, out.Bytes())
			}
			ws, ok := ee.Sys().(syscall.WaitStatus)
			if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTRAP {
				t.Fatalf("%s: %v, want death by SIGTRAP\n%s", tc.qemu, err, out.Bytes())
			}
			// qemu -strace reports the signal with the faulting address:
			// the trap at the start of the code.
			m := regexp.MustCompile(`SIGTRAP \{.*si_addr=0x([0-9a-f]+)`).FindSubmatch(out.Bytes())
			if m == nil {
				t.Fatalf("no SIGTRAP report in the -strace output:\n%s", out.Bytes())
			}
			if addr, err := strconv.ParseUint(string(m[1]), 16, 64); err != nil || addr != 0x10000000+codeAt(tc.a)+stubTrapOff {
				t.Errorf("SIGTRAP at %s, want the trap at %#x", m[1], 0x10000000+codeAt(tc.a)+stubTrapOff)
			}
			// -strace lines look like "PID name(args) = ret".
			if m := regexp.MustCompile(`(?m)^\d+ \w+\(`).Find(out.Bytes()); m != nil {
				t.Errorf("the stub made a system call on its own:\n%s", out.Bytes())
			}
		})
	}
}

// TestVectorUseCode checks the vector gadgets byte by byte against what
// GNU as encodes for them (powerpc64-linux-gnu-as -mpower9; objdump shows
// xxlor vs0,vs0,vs0 as "xxmr vs0,vs0" and vor v0,v0,v0 as "vmr v0,v0"), in
// both byte orders, and that each gadget sits at its exported offset.
func TestVectorUseCode(t *testing.T) {
	tests := []struct {
		name  string
		order binary.ByteOrder
		want  []byte
	}{
		{"big-endian", binary.BigEndian, []byte{
			0xf0, 0x00, 0x04, 0x90, 0x44, 0x00, 0x00, 0x02, 0x7f, 0xe0, 0x00, 0x08,
			0x10, 0x00, 0x04, 0x84, 0x44, 0x00, 0x00, 0x02, 0x7f, 0xe0, 0x00, 0x08}},
		{"little-endian", binary.LittleEndian, []byte{
			0x90, 0x04, 0x00, 0xf0, 0x02, 0x00, 0x00, 0x44, 0x08, 0x00, 0xe0, 0x7f,
			0x84, 0x04, 0x00, 0x10, 0x02, 0x00, 0x00, 0x44, 0x08, 0x00, 0xe0, 0x7f}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := VectorUseCode(tc.order)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("VectorUseCode = % x, want % x", got, tc.want)
			}
			for _, g := range []struct {
				off   int
				first uint32
			}{{VSXUseOffset, insnXXLOR0}, {VMXUseOffset, insnVOR0}} {
				for k, w := range []uint32{g.first, insnSC, insnTrap} {
					if have := tc.order.Uint32(got[g.off+4*k:]); have != w {
						t.Errorf("word at %d is %#x, want %#x", g.off+4*k, have, w)
					}
				}
			}
		})
	}
}

// TestSigactionLoopDisassembly checks the loop that reads every signal
// action (arch.SigactionLooper) as objdump reads it, for each byte order and
// word size: a 64-bit store of r3 on ppc64, a 32-bit one on ppc32, and the
// trap at the PC SigactionLoop reports.
func TestSigactionLoopDisassembly(t *testing.T) {
	for _, tc := range []struct {
		a       *Power
		objdump string
		machine string
		endian  string
		store   string
		set     bool
	}{
		{PPC64LE, "powerpc64le-linux-gnu-objdump", "powerpc:common64", "-EL", "std     r3,32(r14)", false},
		{PPC64, "powerpc64-linux-gnu-objdump", "powerpc:common64", "-EB", "std     r3,32(r14)", false},
		{PPC32, "powerpc-linux-gnu-objdump", "powerpc:common", "-EB", "stw     r3,32(r14)", false},
		{PPC64LE, "powerpc64le-linux-gnu-objdump", "powerpc:common64", "-EL", "std     r3,32(r14)", true},
		{PPC32, "powerpc-linux-gnu-objdump", "powerpc:common", "-EB", "stw     r3,32(r14)", true},
	} {
		t.Run(fmt.Sprintf("%s/set=%v", tc.a.Name(), tc.set), func(t *testing.T) {
			tool, err := exec.LookPath(tc.objdump)
			if err != nil {
				t.Skipf("%s not installed (Debian binutils cross package): %v", tc.objdump, err)
			}
			code, trapPC := tc.a.SigactionLoop(tc.set)
			lines, out := disassemble(t, tool, tc.machine, tc.endian, code)
			var got []string
			for _, l := range lines {
				_, text, _ := strings.Cut(l, " ")
				got = append(got, strings.Join(strings.Fields(text), " "))
			}
			args := []string{"li r4,0", "mr r5,r14"}
			if tc.set {
				args = []string{"mr r4,r14", "li r5,0"}
			}
			want := []string{"mr r0,r16", "mr r3,r15", args[0], args[1], "li r6,8", "sc",
				strings.Join(strings.Fields(tc.store), " "), "mfcr r7", "stw r7,40(r14)", "addi r14,r14,48",
				"addi r15,r15,1", "cmpwi r15,65", "bne 0x0", "trap"}
			if strings.Join(got, "; ") != strings.Join(want, "; ") {
				t.Errorf("disassembly\n%q\nwant\n%q\n%s", got, want, out)
			}
			if trapPC != uint64(len(code)-4) {
				t.Errorf("trap PC %#x, want the last instruction %#x", trapPC, len(code)-4)
			}
		})
	}
}

// disassemble runs objdump on code and returns its instructions as
// "offset text" (hex offset), and objdump's output.
func disassemble(t *testing.T, tool, machine, endian string, code []byte) ([]string, []byte) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "code.bin")
	if err := os.WriteFile(bin, code, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "-D", "-b", "binary", "-m", machine, endian, bin).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", tool, err, out)
	}
	// Lines like "   4:	02 00 00 44 	sc".
	re := regexp.MustCompile(`(?m)^\s+([0-9a-f]+):\s+(?:[0-9a-f]{2} ){4}\s*(\S.*)$`)
	var got []string
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		got = append(got, m[1]+" "+strings.TrimSpace(m[2]))
	}
	return got, out
}
