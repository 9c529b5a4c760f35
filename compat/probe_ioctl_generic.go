//go:build !ppc64 && !ppc64le

package compat

// iowr is _IOWR from include/uapi/asm-generic/ioctl.h (amd64, arm64):
// 8 bits nr, 8 bits type, 14 bits size, 2 bits direction (read=2, write=1).
func iowr(typ, nr, size uintptr) uintptr {
	const dirReadWrite = 2 | 1
	return dirReadWrite<<30 | size<<16 | typ<<8 | nr
}
