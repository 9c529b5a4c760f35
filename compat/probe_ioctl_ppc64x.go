//go:build ppc64 || ppc64le

package compat

// iowr is _IOWR from arch/powerpc/include/uapi/asm/ioctl.h: 13 bits of
// size and 3 bits of direction (read=2, write=4), unlike asm-generic.
func iowr(typ, nr, size uintptr) uintptr {
	const dirReadWrite = 2 | 4
	return dirReadWrite<<29 | size<<16 | typ<<8 | nr
}
