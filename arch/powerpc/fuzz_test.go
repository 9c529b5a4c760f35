package powerpc

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/migrated/migrated/arch"
)

// FuzzDecodeRegs feeds NT_PRSTATUS buffers (the bytes come from the kernel
// of another host, through the image) to every POWER arch. Seeds: the
// captured dumps and the unit-test register states.
func FuzzDecodeRegs(f *testing.F) {
	for _, file := range []string{"regs-ppc64le.txt", "regs-ppc64.txt", "regs-ppc32.txt"} {
		sets, err := parseRegDump(filepath.Join(dumpDir, file))
		if err == nil && sets[arch.NT_PRSTATUS] != nil {
			f.Add(sets[arch.NT_PRSTATUS].data)
		} else if !os.IsNotExist(err) && err != nil {
			f.Fatal(err)
		}
	}
	for _, a := range all {
		for _, words := range []map[int]uint64{
			{ptTrap: trapSC, ptCCR: crSO, ptR3: arch.ERESTARTSYS, ptOrigR3: 3, ptNIP: 0x1000_0004},
			{ptTrap: trapSCV, ptR3: neg(a, arch.ERESTART_RESTARTBLOCK), ptNIP: 0x1000_0004},
			{ptTrap: trapSC | trapNoRestart, ptCCR: crSO, ptR3: arch.ERESTARTNOHAND},
			{ptTrap: trapProgram, ptR1: 0x7fff_0000},
		} {
			f.Add(mkRegs(f, a, words).Bytes())
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, a := range all {
			r, err := a.DecodeRegs(append([]byte(nil), raw...))
			if err != nil {
				if len(raw) == a.GPRSize() {
					t.Fatalf("%s: %d bytes refused: %v", a.Name(), len(raw), err)
				}
				continue
			}
			_, _, _ = r.PC(), r.SP(), r.TLS()
			for i := 0; i < 6; i++ {
				_ = r.Arg(i)
			}
			nr, ret, in := r.InSyscall()
			_, _ = r.SyscallResult()
			c := r.Clone()
			what := c.FixRestart()
			if what != "" {
				if !in {
					t.Fatalf("%s: FixRestart %q on a thread not in a syscall", a.Name(), what)
				}
				if -ret != arch.ERESTARTSYS && -ret != arch.ERESTARTNOINTR && -ret != arch.ERESTARTNOHAND &&
					-ret != arch.ERESTART_RESTARTBLOCK {
					t.Fatalf("%s: FixRestart %q for syscall %d returning %d", a.Name(), what, nr, ret)
				}
				if again := c.FixRestart(); again != "" {
					t.Fatalf("%s: FixRestart twice: %q", a.Name(), again)
				}
			}
			if !bytes.Equal(r.Bytes(), raw) {
				t.Fatalf("%s: reading or Clone changed the original", a.Name())
			}
			c.SetSyscall(0x1000, 90, 1, 2, 3)
			if _, _, ok := c.InSyscall(); ok {
				t.Fatalf("%s: in a syscall after SetSyscall", a.Name())
			}
			if c.PC() != 0x1000 || c.Arg(2) != 3 {
				t.Fatalf("%s: SetSyscall: pc %#x arg2 %#x", a.Name(), c.PC(), c.Arg(2))
			}
		}
	})
}
