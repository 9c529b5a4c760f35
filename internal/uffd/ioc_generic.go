//go:build linux && !ppc64 && !ppc64le && !mips && !mipsle && !mips64 && !mips64le && !sparc64

package uffd

// HostIOC is the ioctl encoding of the kernel this binary runs on.
var HostIOC = GenericIOC
