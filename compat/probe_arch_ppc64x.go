//go:build ppc64 || ppc64le

package compat

func compat32ProbeELF() []byte { return ppc32ExitELF() }

func xstateFeatures() uint64 { return 0 }
