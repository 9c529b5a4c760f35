package image

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestFrameEncodeSplit: EncodeSplit puts random-looking pages into a raw
// frame of their own and everything else into a compressed one; the frames
// read back, one after the other, give every page.
func TestFrameEncodeSplit(t *testing.T) {
	for _, tc := range []struct {
		name       string
		codec      Codec
		shift      uint8
		indices    []uint32
		kinds      string
		wantCodecs []Codec
	}{
		{"mixed", CodecS2, 12, seqIndices(10, 128, 1), "zrrt", []Codec{CodecS2, CodecRaw}},
		{"mixed zstd sparse", CodecZstd, 12, seqIndices(0, 99, 3), "trz", []Codec{CodecZstd, CodecRaw}},
		{"random only", CodecS2, 12, seqIndices(0, 32, 1), "r", []Codec{CodecRaw}},
		{"text only", CodecS2, 12, seqIndices(0, 32, 1), "t", []Codec{CodecS2}},
		{"zero and random", CodecS2, 12, seqIndices(0, 40, 1), "zr", []Codec{CodecRaw, CodecRaw}},
		{"raw codec", CodecRaw, 12, seqIndices(0, 40, 1), "zrt", []Codec{CodecRaw}},
		{"64k pages", CodecS2, 16, seqIndices(0, 9, 2), "tzr", []Codec{CodecS2, CodecRaw}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := NewFrameEncoder(tc.codec)
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			pages := testPages(len(tc.indices), tc.shift, tc.kinds, 2)
			const start = 0x7f0000000000
			prefix := []byte("kept")
			b, nf, err := enc.EncodeSplit(append([]byte{}, prefix...), 5, start, tc.shift, tc.indices, pages)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, prefix) {
				t.Fatal("dst's bytes were not kept")
			}
			if nf != len(tc.wantCodecs) {
				t.Fatalf("%d frames, want %d", nf, len(tc.wantCodecs))
			}
			ps := 1 << tc.shift
			got := map[uint64][]byte{}
			dec := NewFrameDecoder()
			defer dec.Close()
			r := bytes.NewReader(b[len(prefix):])
			for i := 0; i < nf; i++ {
				fb, err := dec.ReadFrame(r)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				f, err := dec.Decode(fb)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if f.Codec != tc.wantCodecs[i] || f.Round != 5 || f.Start != start {
					t.Errorf("frame %d: codec %v round %d start %#x, want %v", i, f.Codec, f.Round, f.Start, tc.wantCodecs[i])
				}
				err = f.Extents(func(addr uint64, n int, data []byte) error {
					for k := 0; k < n; k++ {
						p := make([]byte, ps)
						if data != nil {
							copy(p, data[k*ps:])
						}
						if _, dup := got[addr+uint64(k*ps)]; dup {
							t.Errorf("page %#x in two frames", addr+uint64(k*ps))
						}
						got[addr+uint64(k*ps)] = p
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if r.Len() != 0 {
				t.Fatalf("%d bytes after the frames", r.Len())
			}
			if len(got) != len(tc.indices) {
				t.Fatalf("%d pages back, want %d", len(got), len(tc.indices))
			}
			for i, idx := range tc.indices {
				if p := got[start+uint64(idx)<<tc.shift]; !bytes.Equal(p, pages[i*ps:(i+1)*ps]) {
					t.Fatalf("page %d (index %d) differs", i, idx)
				}
			}
		})
	}
}

func TestIncompressible(t *testing.T) {
	pointers := make([]byte, 4096)
	for i := 0; i < 4096; i += 8 {
		binary.LittleEndian.PutUint64(pointers[i:], 0x7f3a_0000_0000+uint64(i*24))
	}
	counters := make([]byte, 4096)
	for i := 0; i < 4096; i += 4 {
		binary.LittleEndian.PutUint32(counters[i:], uint32(i*i))
	}
	for _, tc := range []struct {
		name string
		page []byte
		want bool
	}{
		{"random", testPages(1, 12, "r", 3), true},
		{"random 64k", testPages(1, 16, "r", 3), true},
		{"text", testPages(1, 12, "t", 3), false},
		{"zero", make([]byte, 4096), false},
		{"pointers", pointers, false},
		{"counters", counters, false},
		{"tiny", make([]byte, 16), false},
	} {
		if got := Incompressible(tc.page); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func BenchmarkFrameEncodeSplitS2(b *testing.B) {
	enc, _ := NewFrameEncoder(CodecS2)
	pages := testPages(128, 12, "zrrt", 1)
	idx := seqIndices(0, 128, 1)
	var buf []byte
	b.SetBytes(int64(len(pages)))
	for b.Loop() {
		buf, _, _ = enc.EncodeSplit(buf[:0], 0, 0, 12, idx, pages)
	}
}

// BenchmarkFrameEncodeCold encodes frames of 128 pages taken in turn from
// 64 MiB of mixed pages, so that pages come from memory, not the cache, as
// they do when a task's memory streams out: Encode against EncodeSplit.
func BenchmarkFrameEncodeCold(b *testing.B) {
	const n = 16384
	pages := testPages(n, 12, "zrrt", 1)
	idx := seqIndices(0, 128, 1)
	for _, split := range []bool{false, true} {
		name := "Encode"
		if split {
			name = "EncodeSplit"
		}
		b.Run(name, func(b *testing.B) {
			enc, _ := NewFrameEncoder(CodecS2)
			var buf []byte
			b.SetBytes(128 << 12)
			off := 0
			for b.Loop() {
				p := pages[off<<12 : (off+128)<<12]
				if split {
					buf, _, _ = enc.EncodeSplit(buf[:0], 0, 0, 12, idx, p)
				} else {
					buf, _ = enc.Encode(buf[:0], 0, 0, 12, idx, p)
				}
				off = (off + 128) % n
			}
		})
	}
}

// BenchmarkFrameCodecCold is BenchmarkFrameEncodeCold plus decoding what
// was encoded: the CPU both ends of a page stream spend per byte of memory,
// without the transport.
func BenchmarkFrameCodecCold(b *testing.B) {
	const n = 16384
	pages := testPages(n, 12, "zrrt", 1)
	idx := seqIndices(0, 128, 1)
	for _, split := range []bool{false, true} {
		name := "Encode"
		if split {
			name = "EncodeSplit"
		}
		b.Run(name, func(b *testing.B) {
			enc, _ := NewFrameEncoder(CodecS2)
			dec := NewFrameDecoder()
			var buf []byte
			b.SetBytes(128 << 12)
			off := 0
			for b.Loop() {
				p := pages[off<<12 : (off+128)<<12]
				frames := 1
				if split {
					buf, frames, _ = enc.EncodeSplit(buf[:0], 0, 0, 12, idx, p)
				} else {
					buf, _ = enc.Encode(buf[:0], 0, 0, 12, idx, p)
				}
				r := bytes.NewReader(buf)
				for i := 0; i < frames; i++ {
					fb, err := dec.ReadFrame(r)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := dec.Decode(fb); err != nil {
						b.Fatal(err)
					}
				}
				off = (off + 128) % n
			}
		})
	}
}
