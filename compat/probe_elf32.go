package compat

import "encoding/binary"

// compat32ProbeStatus is the exit status of the generated 32-bit probe.
const compat32ProbeStatus = 42

// ELF constants, from include/uapi/linux/elf.h and elf-em.h.
const (
	elfClass32  = 1
	elfData2LSB = 1
	elfData2MSB = 2
	elfETExec   = 2
	elfEM386    = 3
	elfEMPPC    = 20
	elfPTLoad   = 1
	elfPFRX     = 4 | 1
)

// elf32Exec builds the smallest static ELF32 executable that runs code:
// one ELF header, one PT_LOAD program header covering the whole file
// mapped at vaddr, and the code right after them.
func elf32Exec(machine uint16, order binary.AppendByteOrder, vaddr, align uint32, code []byte) []byte {
	const ehsize, phsize = 52, 32
	total := uint32(ehsize + phsize + len(code))
	b := make([]byte, 0, total)
	data := byte(elfData2LSB)
	if order == binary.AppendByteOrder(binary.BigEndian) {
		data = elfData2MSB
	}
	b = append(b, 0x7f, 'E', 'L', 'F', elfClass32, data, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	b = order.AppendUint16(b, elfETExec)
	b = order.AppendUint16(b, machine)
	b = order.AppendUint32(b, 1)                   // e_version
	b = order.AppendUint32(b, vaddr+ehsize+phsize) // e_entry
	b = order.AppendUint32(b, ehsize)              // e_phoff
	b = order.AppendUint32(b, 0)                   // e_shoff
	b = order.AppendUint32(b, 0)                   // e_flags
	b = order.AppendUint16(b, ehsize)
	b = order.AppendUint16(b, phsize)
	b = order.AppendUint16(b, 1) // e_phnum
	b = order.AppendUint16(b, 0) // e_shentsize
	b = order.AppendUint16(b, 0) // e_shnum
	b = order.AppendUint16(b, 0) // e_shstrndx
	// Program header.
	b = order.AppendUint32(b, elfPTLoad)
	b = order.AppendUint32(b, 0) // p_offset
	b = order.AppendUint32(b, vaddr)
	b = order.AppendUint32(b, vaddr)
	b = order.AppendUint32(b, total) // p_filesz
	b = order.AppendUint32(b, total) // p_memsz
	b = order.AppendUint32(b, elfPFRX)
	b = order.AppendUint32(b, align)
	return append(b, code...)
}

// i386ExitELF: mov $1,%eax; mov $42,%ebx; int $0x80 (exit(42)).
func i386ExitELF() []byte {
	code := []byte{0xb8, 1, 0, 0, 0, 0xbb, compat32ProbeStatus, 0, 0, 0, 0xcd, 0x80}
	return elf32Exec(elfEM386, binary.LittleEndian, 0x08048000, 0x1000, code)
}

// ppc32ExitELF: li r0,1; li r3,42; sc (exit(42)), big-endian.
func ppc32ExitELF() []byte {
	var code []byte
	for _, insn := range []uint32{0x38000001, 0x38600000 | compat32ProbeStatus, 0x44000002} {
		code = binary.BigEndian.AppendUint32(code, insn)
	}
	return elf32Exec(elfEMPPC, binary.BigEndian, 0x10000000, 0x10000, code)
}
