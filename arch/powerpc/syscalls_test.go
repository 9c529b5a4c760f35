package powerpc

import (
	"reflect"
	"testing"
)

// TestSyscallTables checks the tables against each other and against the
// rules of syscall.tbl rather than repeating them: no number is used
// twice, only restart_syscall (0) and arch_prctl (none on powerpc) are
// zero, and the 32-bit table differs from the 64-bit one exactly where the
// "32" and "64" rows of arch/powerpc/kernel/syscalls/syscall.tbl give
// different entries for the calls the engine makes: mmap (90) -> mmap2 (192).
func TestSyscallTables(t *testing.T) {
	zeroOK := map[string]bool{"RestartSyscall": true, "ArchPrctl": true}
	for _, a := range all {
		v := reflect.ValueOf(*a.Syscalls())
		seen := map[int64]string{}
		for i := 0; i < v.NumField(); i++ {
			name, nr := v.Type().Field(i).Name, v.Field(i).Int()
			if nr == 0 {
				if !zeroOK[name] {
					t.Errorf("%s: %s has no number", a.Name(), name)
				}
				continue
			}
			if nr < 0 || nr > 462 { // 462: the last row of the 6.1 table is 450; room for a few more
				t.Errorf("%s: %s = %d out of range", a.Name(), name, nr)
			}
			if other, dup := seen[nr]; dup {
				t.Errorf("%s: %s and %s both %d", a.Name(), name, other, nr)
			}
			seen[nr] = name
		}
	}
	if *PPC64.Syscalls() != *PPC64LE.Syscalls() {
		t.Error("ppc64 and ppc64le share one table (the same syscall.tbl rows)")
	}
	a, b := reflect.ValueOf(*PPC64.Syscalls()), reflect.ValueOf(*PPC32.Syscalls())
	for i := 0; i < a.NumField(); i++ {
		name := a.Type().Field(i).Name
		x, y := a.Field(i).Int(), b.Field(i).Int()
		switch name {
		case "Mmap":
			if x != 90 || y != 192 {
				t.Errorf("mmap: 64-bit %d (want 90), 32-bit %d (want mmap2 192)", x, y)
			}
		default:
			if x != y {
				t.Errorf("%s: 64-bit %d, 32-bit %d", name, x, y)
			}
		}
	}
	// Spot checks of the rows most easily confused with x86's or with the
	// old variants: ugetrlimit not getrlimit (76 is sys_ni_syscall for
	// 64-bit), prlimit64, rt_sigaction, _llseek.
	s := PPC64.Syscalls()
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"getrlimit", s.Getrlimit, 190}, {"prlimit64", s.Prlimit64, 325},
		{"rt_sigaction", s.RtSigaction, 173}, {"_llseek", s.Llseek, 140},
		{"clone3", s.Clone3, 435}, {"exit_group", s.ExitGroup, 234},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}
