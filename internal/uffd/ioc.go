package uffd

// IOC is how an architecture packs an ioctl request number (the kernel's
// _IOC macro): number in bits 0-7, type in bits 8-15, then the argument
// size and the direction, whose widths and values differ.
type IOC struct {
	none, write, read uintptr
	sizeBits          uint
	dirShift          uint
}

// GenericIOC is include/uapi/asm-generic/ioctl.h (x86, arm64, riscv, s390):
// 14 bits of size, 2 bits of direction, _IOC_WRITE 1, _IOC_READ 2.
var GenericIOC = IOC{none: 0, write: 1, read: 2, sizeBits: 14, dirShift: 30}

// PowerPCIOC is arch/powerpc/include/uapi/asm/ioctl.h: 13 bits of size,
// 3 bits of direction, _IOC_NONE 1, _IOC_READ 2, _IOC_WRITE 4. _IOR and _IOW
// differ from the generic encoding; _IOWR happens to coincide.
var PowerPCIOC = IOC{none: 1, write: 4, read: 2, sizeBits: 13, dirShift: 29}

func (e IOC) ioc(dir, typ, nr, size uintptr) uintptr {
	return dir<<e.dirShift | (size&(1<<e.sizeBits-1))<<16 | typ<<8 | nr
}

// IOR is _IOR.
func (e IOC) IOR(typ, nr, size uintptr) uintptr { return e.ioc(e.read, typ, nr, size) }

// IOWR is _IOWR.
func (e IOC) IOWR(typ, nr, size uintptr) uintptr {
	return e.ioc(e.read|e.write, typ, nr, size)
}
