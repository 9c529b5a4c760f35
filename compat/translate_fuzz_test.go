package compat

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// Fuzz targets for every decoder of bytes that come from a peer's image or
// from a tracee: each decodes or errs, never panics, and what decodes
// encodes back to the very same bytes. Seeds come from the unit-test data.

func seedGoldens(f *testing.F, prefix string, sizes ...int) {
	for name, g := range syntheticGoldens() {
		if len(name) >= len(prefix) && name[:len(prefix)] == prefix {
			f.Add(g.raw)
		}
	}
	for _, n := range sizes {
		f.Add(make([]byte, n))
		f.Add(bytes.Repeat([]byte{0xff}, n))
	}
}

func FuzzDecodeI386Regs(f *testing.F) {
	seedGoldens(f, "i386-prstatus", SizeI386PRStatus, SizeI386PRStatus-1, SizeAMD64PRStatus)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeI386Regs(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Encode(), b) {
			t.Fatalf("round trip differs for % x", b)
		}
		_ = r.CPU()
	})
}

func FuzzDecodeI387Regs(f *testing.F) {
	seedGoldens(f, "i386-fpregs", SizeI387FPRegs, 512)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeI387Regs(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Encode(), b) {
			t.Fatalf("round trip differs for % x", b)
		}
	})
}

func FuzzDecodePPC32Regs(f *testing.F) {
	seedGoldens(f, "ppc32-prstatus", SizePPC32PRStatus, SizePPC64PRStatus)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodePPC32Regs(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Encode(), b) {
			t.Fatalf("round trip differs for % x", b)
		}
		_ = r.CPU()
	})
}

func FuzzDecodePPCFPRegs(f *testing.F) {
	f.Add(words(be, 8, 33, 0x3ff00000), true)
	f.Add(make([]byte, SizePPCFPRegs-8), false)
	f.Fuzz(func(t *testing.T, b []byte, big bool) {
		var o binary.ByteOrder = binary.LittleEndian
		if big {
			o = binary.BigEndian
		}
		r, err := DecodePPCFPRegs(o, b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Encode(o), b) {
			t.Fatalf("round trip differs for % x", b)
		}
	})
}

// compatSeeds adds encodings of the unit tests' values for both ABIs.
func compatSeeds(f *testing.F, enc func(CompatABI) []byte, sizes ...int) {
	for _, c := range compatABIs {
		if b := enc(c.abi); b != nil {
			f.Add(b, c.abi.Order == binary.BigEndian)
		}
	}
	for _, n := range sizes {
		f.Add(make([]byte, n), false)
		f.Add(bytes.Repeat([]byte{0xff}, n), true)
	}
}

func abiOf(big bool) CompatABI {
	if big {
		return CompatPPC32
	}
	return CompatI386
}

func FuzzDecodeSigaction(f *testing.F) {
	compatSeeds(f, func(c CompatABI) []byte {
		b, _ := c.EncodeSigaction(sigactionSeed)
		return b
	}, SizeCompatSigaction, 32)
	f.Fuzz(func(t *testing.T, b []byte, big bool) {
		c := abiOf(big)
		sa, err := c.DecodeSigaction(10, b)
		if err != nil {
			return
		}
		back, err := c.EncodeSigaction(sa)
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("round trip: % x -> %v -> % x, %v", b, sa, back, err)
		}
	})
}

func FuzzDecodeStack(f *testing.F) {
	compatSeeds(f, func(c CompatABI) []byte {
		b, _ := c.EncodeStack(stackSeed)
		return b
	}, SizeCompatStack, 24)
	f.Fuzz(func(t *testing.T, b []byte, big bool) {
		c := abiOf(big)
		s, err := c.DecodeStack(b)
		if err != nil {
			return
		}
		back, err := c.EncodeStack(s)
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("round trip: % x -> %v -> % x, %v", b, s, back, err)
		}
	})
}

func FuzzDecodeRlimit(f *testing.F) {
	compatSeeds(f, func(c CompatABI) []byte {
		b, _ := c.EncodeRlimit(rlimitSeed)
		return b
	}, SizeCompatRlimit, 16)
	f.Fuzz(func(t *testing.T, b []byte, big bool) {
		c := abiOf(big)
		r, err := c.DecodeRlimit(7, b)
		if err != nil {
			return
		}
		back, err := c.EncodeRlimit(r)
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("round trip: % x -> %v -> % x, %v", b, r, back, err)
		}
	})
}

func FuzzDecodeItimerval(f *testing.F) {
	compatSeeds(f, func(c CompatABI) []byte {
		b, _ := c.EncodeItimerval(itimerSeed)
		return b
	}, SizeCompatItimerval, 32)
	f.Fuzz(func(t *testing.T, b []byte, big bool) {
		c := abiOf(big)
		it, err := c.DecodeItimerval(0, b)
		if err != nil {
			return
		}
		back, err := c.EncodeItimerval(it)
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("round trip: % x -> %v -> % x, %v", b, it, back, err)
		}
	})
}

func FuzzDecodeRobustListHead(f *testing.F) {
	compatSeeds(f, func(c CompatABI) []byte {
		return c.EncodeRobustListHead(CompatRobustListHead{Next: 0xf7d4a6e4, FutexOffset: -20})
	}, SizeCompatRobustListHead, 24)
	f.Fuzz(func(t *testing.T, b []byte, big bool) {
		c := abiOf(big)
		h, err := c.DecodeRobustListHead(b)
		if err != nil {
			return
		}
		if back := c.EncodeRobustListHead(h); !bytes.Equal(back, b) {
			t.Fatalf("round trip: % x -> %+v -> % x", b, h, back)
		}
	})
}

func FuzzDecodeSigset(f *testing.F) {
	compatSeeds(f, func(c CompatABI) []byte { return c.EncodeSigset(1<<9 | 1<<33) }, SizeCompatSigset, 16)
	f.Fuzz(func(t *testing.T, b []byte, big bool) {
		c := abiOf(big)
		m, err := c.DecodeSigset(b)
		if err != nil {
			return
		}
		if back := c.EncodeSigset(m); !bytes.Equal(back, b) {
			t.Fatalf("round trip: % x -> %#x -> % x", b, m, back)
		}
	})
}
