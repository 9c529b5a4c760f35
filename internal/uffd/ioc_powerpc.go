//go:build linux && (ppc64 || ppc64le)

package uffd

// HostIOC is the ioctl encoding of the kernel this binary runs on.
var HostIOC = PowerPCIOC
