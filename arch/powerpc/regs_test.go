package powerpc

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/migrated/migrated/arch"
)

var all = []*Power{PPC64LE, PPC64, PPC32}

func TestArchProperties(t *testing.T) {
	for _, tc := range []struct {
		a        *Power
		kind     arch.Kind
		word     int
		order    binary.ByteOrder
		abi      arch.ABI
		machine  uint16
		gprSize  int
		gadget   []byte
		mmapPage bool
		vsx      bool
	}{
		{PPC64LE, arch.KindPPC64LE, 8, binary.LittleEndian, arch.ABIPPC64ELFv2, arch.EM_PPC64, 384, []byte{0x02, 0x00, 0x00, 0x44}, false, true},
		{PPC64, arch.KindPPC64, 8, binary.BigEndian, arch.ABIPPC64ELFv1, arch.EM_PPC64, 384, []byte{0x44, 0x00, 0x00, 0x02}, false, true},
		{PPC32, arch.KindPPC32, 4, binary.BigEndian, arch.ABIPPC32SysV, arch.EM_PPC, 192, []byte{0x44, 0x00, 0x00, 0x02}, true, false},
	} {
		t.Run(tc.a.Name(), func(t *testing.T) {
			a := tc.a
			if a.Kind() != tc.kind || a.Name() != tc.kind.String() || a.WordSize() != tc.word ||
				a.ByteOrder() != tc.order || a.ABI() != tc.abi || a.ELFMachine() != tc.machine {
				t.Errorf("got kind %v name %s word %d order %v abi %v machine %d",
					a.Kind(), a.Name(), a.WordSize(), a.ByteOrder(), a.ABI(), a.ELFMachine())
			}
			if a.GPRSize() != tc.gprSize {
				t.Errorf("GPRSize %d, want %d", a.GPRSize(), tc.gprSize)
			}
			if string(a.Gadget()) != string(tc.gadget) || a.GadgetPCOffset() != len(tc.gadget) {
				t.Errorf("gadget % x (pc offset %d), want % x", a.Gadget(), a.GadgetPCOffset(), tc.gadget)
			}
			if a.MmapUsesPages() != tc.mmapPage {
				t.Errorf("MmapUsesPages %v", a.MmapUsesPages())
			}
			rs := a.Regsets()
			if len(rs) == 0 || rs[0].Note != arch.NT_PRSTATUS || !rs[0].Required {
				t.Errorf("regsets %+v: NT_PRSTATUS must come first and be required", rs)
			}
			names := map[string]bool{}
			hasVSX := false
			for _, r := range rs {
				if names[r.Name] {
					t.Errorf("regset name %q twice", r.Name)
				}
				names[r.Name] = true
				hasVSX = hasVSX || r.Note == arch.NT_PPC_VSX
			}
			if hasVSX != tc.vsx {
				t.Errorf("VSX regset listed: %v, want %v", hasVSX, tc.vsx)
			}
			got, err := arch.Lookup(tc.kind)
			if err != nil || got != arch.Arch(a) {
				t.Errorf("arch.Lookup(%v) = %v, %v", tc.kind, got, err)
			}
		})
	}
}

func TestDecodeRegsLength(t *testing.T) {
	for _, a := range all {
		for _, n := range []int{0, 4, 191, 192, 193, 383, 384, 385, 768} {
			_, err := a.DecodeRegs(make([]byte, n))
			if ok := n == a.GPRSize(); ok != (err == nil) {
				t.Errorf("%s: DecodeRegs(%d bytes) err %v", a.Name(), n, err)
			}
			if err != nil && !errors.Is(err, arch.ErrRegsetSize) {
				t.Errorf("%s: %d bytes: err %v is not ErrRegsetSize", a.Name(), n, err)
			}
		}
	}
}

// mkRegs builds a register buffer for a with the given words set.
func mkRegs(t testing.TB, a *Power, words map[int]uint64) *regs {
	t.Helper()
	r, err := a.DecodeRegs(make([]byte, a.GPRSize()))
	if err != nil {
		t.Fatal(err)
	}
	rr := r.(*regs)
	for i, v := range words {
		rr.set(i, v)
	}
	return rr
}

// word reads word i of b independently of the code under test.
func word(a *Power, b []byte, i int) uint64 {
	if a.WordSize() == 8 {
		return a.ByteOrder().Uint64(b[8*i:])
	}
	return uint64(a.ByteOrder().Uint32(b[4*i:]))
}

func TestRegsAccessors(t *testing.T) {
	for _, a := range all {
		t.Run(a.Name(), func(t *testing.T) {
			// Values that fit a 32-bit register, so one table serves all.
			r := mkRegs(t, a, map[int]uint64{ptR1: 0x7fff0010, ptR2: 0x1200_7500, ptR13: 0x4000_77c0,
				ptR3: 3, ptR3 + 1: 4, ptR3 + 2: 5, ptR3 + 3: 6, ptR3 + 4: 7, ptR3 + 5: 8, ptNIP: 0x1000_0abc})
			b := r.Bytes()
			wantTLS := uint64(0x4000_77c0)
			if a.WordSize() == 4 {
				wantTLS = 0x1200_7500
			}
			for _, c := range []struct {
				name      string
				got, want uint64
			}{
				{"PC", r.PC(), 0x1000_0abc},
				{"PC in the nip word", word(a, b, 32), 0x1000_0abc},
				{"SP", r.SP(), 0x7fff0010},
				{"TLS", r.TLS(), wantTLS},
				{"Arg(0)", r.Arg(0), 3},
				{"Arg(5)", r.Arg(5), 8},
			} {
				if c.got != c.want {
					t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
				}
			}
			r.SetPC(0x2000_0000)
			r.SetSP(0x3000_0000)
			if word(a, b, 32) != 0x2000_0000 || word(a, b, 1) != 0x3000_0000 {
				t.Errorf("SetPC/SetSP wrote nip %#x r1 %#x", word(a, b, 32), word(a, b, 1))
			}
			// Byte order on the wire: nip = 0x20000000 in the task's order.
			wantNIP := map[arch.Kind]string{
				arch.KindPPC64LE: "\x00\x00\x00\x20\x00\x00\x00\x00",
				arch.KindPPC64:   "\x00\x00\x00\x00\x20\x00\x00\x00",
				arch.KindPPC32:   "\x20\x00\x00\x00",
			}[a.Kind()]
			if got := string(b[32*a.WordSize() : 33*a.WordSize()]); got != wantNIP {
				t.Errorf("nip bytes % x, want % x", got, wantNIP)
			}
			c := r.Clone()
			c.SetPC(0x5000_0000)
			if r.PC() != 0x2000_0000 || c.PC() != 0x5000_0000 {
				t.Errorf("Clone shares its buffer: pc %#x clone pc %#x", r.PC(), c.PC())
			}
		})
	}
}

// neg is the two's complement of v in a's word size.
func neg(a *Power, v uint64) uint64 {
	if a.WordSize() == 4 {
		return uint64(uint32(-int32(v)))
	}
	return -v
}

func TestInSyscall(t *testing.T) {
	for _, a := range all {
		for _, tc := range []struct {
			name    string
			trap    uint64
			ccr     uint64
			r3      uint64
			ok      bool
			wantRet int64
		}{
			{"sc success", trapSC, 0, 42, true, 42},
			{"sc error ERESTARTSYS", trapSC, crSO, arch.ERESTARTSYS, true, -arch.ERESTARTSYS},
			{"sc error with other cr bits", trapSC, crSO | 0x8000000f, 9, true, -9},
			{"sc, restart already settled (norestart bit)", trapSC | trapNoRestart, crSO, 4, false, 0},
			{"scv, norestart bit", trapSCV | trapNoRestart, 0, neg(a, arch.ERESTARTSYS), false, 0},
			{"scv error", trapSCV, 0, neg(a, arch.ERESTARTNOHAND), true, -arch.ERESTARTNOHAND},
			{"scv success", trapSCV, crSO, 7, true, 7},
			{"program check", trapProgram, crSO, 512, false, 0},
			{"cleared by SetSyscall", 0, crSO, 512, false, 0},
			{"decrementer", 0x900, 0, 0, false, 0},
		} {
			r := mkRegs(t, a, map[int]uint64{ptTrap: tc.trap, ptCCR: tc.ccr, ptR3: tc.r3, ptR0: 162})
			nr, ret, ok := r.InSyscall()
			if ok != tc.ok || (ok && (nr != 162 || ret != tc.wantRet)) {
				t.Errorf("%s %s: InSyscall = %d, %d, %v; want 162, %d, %v", a.Name(), tc.name, nr, ret, ok, tc.wantRet, tc.ok)
			}
		}
	}
}

func TestSetSyscall(t *testing.T) {
	for _, a := range all {
		for _, tc := range []struct {
			name string
			args []uint64
		}{
			{"no args", nil},
			{"three", []uint64{0x10, 0x20, 0x30}},
			{"six", []uint64{1, 2, 3, 4, 5, 0xffff_ffff}},
		} {
			// Start from a thread interrupted in a syscall: SetSyscall
			// must leave nothing of that for the kernel's restart logic.
			r := mkRegs(t, a, map[int]uint64{ptTrap: trapSC, ptCCR: crSO | 0x22000000, ptR3: arch.ERESTARTSYS,
				ptR0: 162, ptOrigR3: 99, ptR2: 0x1234, ptR3 + 6: 0x99, ptCTR: 0xc7c7, ptNIP: 0x1000_0000,
				ptR3 + 1: 11, ptR3 + 5: 55})
			r.SetSyscall(0x7fff_1004, 90, tc.args...)
			b := r.Bytes()
			for i := 0; i < 6; i++ {
				var want uint64
				if i < len(tc.args) {
					want = tc.args[i]
				}
				if got := word(a, b, ptR3+i); got != want {
					t.Errorf("%s %s: r%d = %#x, want %#x", a.Name(), tc.name, 3+i, got, want)
				}
			}
			for _, c := range []struct {
				name string
				i    int
				want uint64
			}{
				{"nip", ptNIP, 0x7fff_1004},
				{"r0", ptR0, 90},
				{"orig_gpr3", ptOrigR3, word(a, b, ptR3)},
				{"trap", ptTrap, 0},
				{"r2 untouched", ptR2, 0x1234},
				{"r9 untouched", ptR3 + 6, 0x99},
				{"ctr untouched", ptCTR, 0xc7c7},
			} {
				if got := word(a, b, c.i); got != c.want {
					t.Errorf("%s %s: %s = %#x, want %#x", a.Name(), tc.name, c.name, got, c.want)
				}
			}
			if _, _, ok := r.InSyscall(); ok {
				t.Errorf("%s %s: still InSyscall after SetSyscall", a.Name(), tc.name)
			}
			if what := r.FixRestart(); what != "" {
				t.Errorf("%s %s: FixRestart after SetSyscall: %q", a.Name(), tc.name, what)
			}
		}
	}
}

func TestSyscallResult(t *testing.T) {
	for _, a := range all {
		for _, tc := range []struct {
			name  string
			trap  uint64
			ccr   uint64
			r3    uint64
			val   uint64
			errno arch.Errno
		}{
			{"sc success", trapSC, 0, 0x7fff_0000, 0x7fff_0000, 0},
			{"sc zero", trapSC, 0x20000000, 0, 0, 0},
			{"sc EBADF", trapSC, crSO, 9, 0, 9},
			{"sc ENOSYS", trapSC, crSO | 0x40000000, 38, 0, 38},
			// Without SO a value that looks like -errno is a value (an
			// address high in a 32-bit space, say): the flag decides.
			{"sc high value", trapSC, 0, neg(a, 4096), neg(a, 4096), 0},
			{"sc -1 without SO", trapSC, 0, neg(a, 1), neg(a, 1), 0},
			{"scv EFAULT", trapSCV, 0, neg(a, 14), 0, 14},
			{"scv MAX_ERRNO", trapSCV, 0, neg(a, 4095), 0, 4095},
			{"scv below MAX_ERRNO", trapSCV, 0, neg(a, 4096), neg(a, 4096), 0},
			{"scv SO is not an error", trapSCV, crSO, 5, 5, 0},
		} {
			r := mkRegs(t, a, map[int]uint64{ptTrap: tc.trap, ptCCR: tc.ccr, ptR3: tc.r3})
			val, errno := r.SyscallResult()
			if val != tc.val || errno != tc.errno {
				t.Errorf("%s %s: SyscallResult = %#x, %d; want %#x, %d", a.Name(), tc.name, val, errno, tc.val, tc.errno)
			}
		}
	}
}

func TestFixRestart(t *testing.T) {
	const nip, orig, nr = 0x1000_2004, 0x33, 162
	for _, a := range all {
		eintr := neg(a, arch.EINTR)
		for _, tc := range []struct {
			name    string
			trap    uint64
			ccr, r3 uint64
			changed bool
			wantR3  uint64
			wantNIP uint64
			wantSO  bool
		}{
			{"sc ERESTARTSYS", trapSC, crSO, arch.ERESTARTSYS, true, orig, nip - 4, true},
			{"sc ERESTARTNOINTR", trapSC, crSO, arch.ERESTARTNOINTR, true, orig, nip - 4, true},
			{"sc ERESTARTNOHAND", trapSC, crSO, arch.ERESTARTNOHAND, true, orig, nip - 4, true},
			{"sc ERESTART_RESTARTBLOCK", trapSC, crSO, arch.ERESTART_RESTARTBLOCK, true, arch.EINTR, nip, true},
			{"scv ERESTARTSYS", trapSCV, 0, neg(a, arch.ERESTARTSYS), true, orig, nip - 4, false},
			{"scv ERESTART_RESTARTBLOCK", trapSCV, 0, neg(a, arch.ERESTART_RESTARTBLOCK), true, eintr, nip, false},
			{"sc success of 512", trapSC, 0, 512, false, 512, nip, false},
			{"sc EINTR", trapSC, crSO, arch.EINTR, false, arch.EINTR, nip, true},
			{"sc already handled (norestart)", trapSC | trapNoRestart, crSO, arch.ERESTARTSYS, false, arch.ERESTARTSYS, nip, true},
			{"scv positive 512", trapSCV, 0, 512, false, 512, nip, false},
			{"program check", trapProgram, crSO, arch.ERESTARTSYS, false, arch.ERESTARTSYS, nip, true},
		} {
			r := mkRegs(t, a, map[int]uint64{ptTrap: tc.trap, ptCCR: tc.ccr, ptR3: tc.r3, ptR0: nr,
				ptOrigR3: orig, ptNIP: nip, ptResult: 0x77})
			what := r.FixRestart()
			if (what != "") != tc.changed {
				t.Errorf("%s %s: FixRestart = %q, want change %v", a.Name(), tc.name, what, tc.changed)
			}
			b := r.Bytes()
			if got := word(a, b, ptR3); got != tc.wantR3 {
				t.Errorf("%s %s: r3 = %#x, want %#x", a.Name(), tc.name, got, tc.wantR3)
			}
			if got := word(a, b, ptNIP); got != tc.wantNIP {
				t.Errorf("%s %s: nip = %#x, want %#x", a.Name(), tc.name, got, tc.wantNIP)
			}
			if so := word(a, b, ptCCR)&crSO != 0; so != tc.wantSO {
				t.Errorf("%s %s: CR0.SO %v, want %v", a.Name(), tc.name, so, tc.wantSO)
			}
			if got := word(a, b, ptR0); got != nr {
				t.Errorf("%s %s: r0 = %d, want %d kept", a.Name(), tc.name, got, nr)
			}
			if tc.changed {
				if got := word(a, b, ptTrap); got != 0 {
					t.Errorf("%s %s: trap %#x left: the new kernel would restart again", a.Name(), tc.name, got)
				}
				if again := r.FixRestart(); again != "" {
					t.Errorf("%s %s: second FixRestart %q", a.Name(), tc.name, again)
				}
			}
		}
	}
}
