package compat

import "golang.org/x/sys/cpu"

func compat32ProbeELF() []byte { return i386ExitELF() }

const compat32Name = "i386"

// xgetbv0 returns XCR0 (probe_xgetbv_amd64.s).
func xgetbv0() (eax, edx uint32)

// xstateFeatures is XCR0: the state components the OS enabled with XSAVE.
func xstateFeatures() uint64 {
	if !cpu.X86.HasOSXSAVE {
		return 0
	}
	a, d := xgetbv0()
	return uint64(d)<<32 | uint64(a)
}
