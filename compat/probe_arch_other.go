//go:build !amd64 && !ppc64 && !ppc64le

package compat

func compat32ProbeELF() []byte { return nil }

const compat32Name = "32-bit"

func xstateFeatures() uint64 { return 0 }
