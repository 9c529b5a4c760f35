//go:build ppc64 || ppc64le

package compat

func compat32ProbeELF() []byte { return ppc32ExitELF() }

const compat32Name = "ppc32"

func xstateFeatures() uint64 { return 0 }
