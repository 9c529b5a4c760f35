package arch

import (
	"encoding/binary"
	"fmt"
)

// ELF constants (include/uapi/linux/elf.h, elf-em.h).
const (
	ELFCLASS32  = 1
	ELFCLASS64  = 2
	ELFDATA2LSB = 1
	ELFDATA2MSB = 2
	ET_EXEC     = 2
	PT_LOAD     = 1
	PF_X        = 1
	PF_R        = 4

	EM_386    = 3
	EM_PPC    = 20
	EM_PPC64  = 21
	EM_X86_64 = 62
)

// StubImage describes the one loadable segment of a stub executable.
type StubImage struct {
	Class    int              // ELFCLASS32 or ELFCLASS64
	Order    binary.ByteOrder // task byte order
	Machine  uint16
	Flags    uint32 // e_flags (ppc64: 1 = ELFv1, 2 = ELFv2)
	Base     uint64 // address of file offset 0
	PageSize uint64
	Code     []byte // placed right after the headers
	// EntryOffset is the entry point relative to the start of Code; for
	// ELFv1 it is the offset of a function descriptor inside Code.
	EntryOffset uint64
}

// HeaderSize is where Code starts in the file (and in memory above Base).
func (s *StubImage) HeaderSize() uint64 {
	if s.Class == ELFCLASS64 {
		return 64 + 56
	}
	return 52 + 32
}

// Build writes a static ELF executable with one PT_LOAD segment (read and
// execute) mapping the whole file at Base.
func (s *StubImage) Build() ([]byte, error) {
	if s.PageSize == 0 || s.Base%s.PageSize != 0 {
		return nil, fmt.Errorf("stub base %#x not aligned to page size %d", s.Base, s.PageSize)
	}
	if s.Class != ELFCLASS32 && s.Class != ELFCLASS64 {
		return nil, fmt.Errorf("stub: bad ELF class %d", s.Class)
	}
	hdr := s.HeaderSize()
	size := hdr + uint64(len(s.Code))
	if size > s.PageSize {
		return nil, fmt.Errorf("stub: %d bytes do not fit one page", size)
	}
	if s.Class == ELFCLASS32 && s.Base+size > 1<<32 {
		return nil, fmt.Errorf("stub: base %#x outside a 32-bit address space", s.Base)
	}
	o := s.Order
	b := make([]byte, size)
	copy(b, "\x7fELF")
	b[4] = byte(s.Class)
	if o == binary.ByteOrder(binary.BigEndian) {
		b[5] = ELFDATA2MSB
	} else {
		b[5] = ELFDATA2LSB
	}
	b[6] = 1 // EV_CURRENT
	entry := s.Base + hdr + s.EntryOffset
	if s.Class == ELFCLASS64 {
		o.PutUint16(b[16:], ET_EXEC)
		o.PutUint16(b[18:], s.Machine)
		o.PutUint32(b[20:], 1)
		o.PutUint64(b[24:], entry)
		o.PutUint64(b[32:], 64) // e_phoff
		o.PutUint64(b[40:], 0)  // e_shoff
		o.PutUint32(b[48:], s.Flags)
		o.PutUint16(b[52:], 64) // e_ehsize
		o.PutUint16(b[54:], 56) // e_phentsize
		o.PutUint16(b[56:], 1)  // e_phnum
		p := b[64:]
		o.PutUint32(p[0:], PT_LOAD)
		o.PutUint32(p[4:], PF_R|PF_X)
		o.PutUint64(p[8:], 0)
		o.PutUint64(p[16:], s.Base)
		o.PutUint64(p[24:], s.Base)
		o.PutUint64(p[32:], size)
		o.PutUint64(p[40:], size)
		o.PutUint64(p[48:], s.PageSize)
	} else {
		o.PutUint16(b[16:], ET_EXEC)
		o.PutUint16(b[18:], s.Machine)
		o.PutUint32(b[20:], 1)
		o.PutUint32(b[24:], uint32(entry))
		o.PutUint32(b[28:], 52) // e_phoff
		o.PutUint32(b[32:], 0)
		o.PutUint32(b[36:], s.Flags)
		o.PutUint16(b[40:], 52)
		o.PutUint16(b[42:], 32)
		o.PutUint16(b[44:], 1)
		p := b[52:]
		o.PutUint32(p[0:], PT_LOAD)
		o.PutUint32(p[4:], 0)
		o.PutUint32(p[8:], uint32(s.Base))
		o.PutUint32(p[12:], uint32(s.Base))
		o.PutUint32(p[16:], uint32(size))
		o.PutUint32(p[20:], uint32(size))
		o.PutUint32(p[24:], PF_R|PF_X)
		o.PutUint32(p[28:], uint32(s.PageSize))
	}
	copy(b[hdr:], s.Code)
	return b, nil
}
