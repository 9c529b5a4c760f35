package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// testPages returns n pages of 1<<shift bytes following kinds, which is
// repeated: 'z' zero, 'r' random, 't' text.
func testPages(n int, shift uint8, kinds string, seed uint64) []byte {
	ps := 1 << shift
	rng := rand.New(rand.NewPCG(seed, 7))
	words := []string{"page ", "frame ", "round ", "migrate ", "process ", "the ", "of ", "memory\n"}
	b := make([]byte, n*ps)
	for i := 0; i < n; i++ {
		p := b[i*ps : (i+1)*ps]
		switch kinds[i%len(kinds)] {
		case 'r':
			for j := 0; j < ps; j += 8 {
				binary.LittleEndian.PutUint64(p[j:], rng.Uint64())
			}
		case 't':
			for j := 0; j < ps; {
				j += copy(p[j:], words[rng.IntN(len(words))])
			}
		}
	}
	return b
}

func seqIndices(first uint32, n int, stride uint32) []uint32 {
	idx := make([]uint32, n)
	for i := range idx {
		idx[i] = first + uint32(i)*stride
	}
	return idx
}

type frameCase struct {
	name      string
	codec     Codec
	shift     uint8
	indices   []uint32
	kinds     string
	wantCodec Codec // codec the frame is expected to carry
}

var frameCases = []frameCase{
	{"s2 text", CodecS2, 12, seqIndices(0, 64, 1), "t", CodecS2},
	{"s2 mixed", CodecS2, 12, seqIndices(10, 128, 1), "zrrt", CodecS2},
	{"s2 random falls back to raw", CodecS2, 12, seqIndices(0, 32, 1), "r", CodecRaw},
	{"zstd text", CodecZstd, 12, seqIndices(0, 64, 1), "t", CodecZstd},
	{"zstd mixed sparse", CodecZstd, 12, seqIndices(1000, 100, 3), "ztr", CodecZstd},
	{"zstd random falls back to raw", CodecZstd, 12, seqIndices(0, 16, 1), "r", CodecRaw},
	{"raw mixed", CodecRaw, 12, seqIndices(5, 50, 2), "trz", CodecRaw},
	{"all zero", CodecS2, 12, seqIndices(0, 300, 1), "z", CodecRaw},
	{"one page", CodecS2, 12, []uint32{7}, "t", CodecS2},
	{"64k pages", CodecS2, 16, seqIndices(0, 8, 5), "tzr", CodecS2},
	{"high indices", CodecRaw, 12, []uint32{1<<32 - 3, 1<<32 - 2, 1<<32 - 1}, "r", CodecRaw},
}

func TestFrameRoundTrip(t *testing.T) {
	for _, tc := range frameCases {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := NewFrameEncoder(tc.codec)
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			pages := testPages(len(tc.indices), tc.shift, tc.kinds, 1)
			const start = 0x7f0000000000
			b, err := enc.Encode(nil, 3, start, tc.shift, tc.indices, pages)
			if err != nil {
				t.Fatal(err)
			}
			dec := NewFrameDecoder()
			defer dec.Close()
			f, err := dec.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if f.Round != 3 || f.Start != start || f.PageShift != tc.shift || f.NumPages != len(tc.indices) {
				t.Fatalf("header: %+v", f)
			}
			if f.Codec != tc.wantCodec {
				t.Errorf("codec %v, want %v", f.Codec, tc.wantCodec)
			}
			// Rebuild each page from the extents and compare.
			ps := 1 << tc.shift
			got := map[uint64][]byte{}
			err = f.Extents(func(addr uint64, n int, data []byte) error {
				for i := 0; i < n; i++ {
					p := make([]byte, ps)
					if data != nil {
						copy(p, data[i*ps:])
					}
					got[addr+uint64(i*ps)] = p
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.indices) {
				t.Fatalf("%d pages back, want %d", len(got), len(tc.indices))
			}
			for i, idx := range tc.indices {
				p, ok := got[start+uint64(idx)<<tc.shift]
				if !ok || !bytes.Equal(p, pages[i*ps:(i+1)*ps]) {
					t.Fatalf("page %d (index %d) differs", i, idx)
				}
			}
			// ReadFrame reads the same frame back from a stream, then EOF.
			r := bytes.NewReader(append(append([]byte{}, b...), b...))
			for i := 0; i < 2; i++ {
				fb, err := dec.ReadFrame(r)
				if err != nil || !bytes.Equal(fb, b) {
					t.Fatalf("ReadFrame %d: %v", i, err)
				}
			}
			if _, err := dec.ReadFrame(r); err != io.EOF {
				t.Fatalf("ReadFrame at end: %v, want EOF", err)
			}
		})
	}
}

func TestFrameZeroPagesCarryNoBytes(t *testing.T) {
	enc, _ := NewFrameEncoder(CodecRaw)
	pages := testPages(256, 12, "z", 1)
	b, err := enc.Encode(nil, 0, 0, 12, seqIndices(0, 256, 1), pages)
	if err != nil {
		t.Fatal(err)
	}
	if want := FrameHeaderSize + 8 + 32; len(b) != want {
		t.Fatalf("256 zero pages take %d bytes, want %d", len(b), want)
	}
}

func TestFrameEncodeRefuses(t *testing.T) {
	enc, _ := NewFrameEncoder(CodecS2)
	p := testPages(2, 12, "t", 1)
	for _, tc := range []struct {
		name    string
		shift   uint8
		start   uint64
		indices []uint32
		pages   []byte
	}{
		{"no pages", 12, 0, nil, nil},
		{"short bytes", 12, 0, []uint32{0, 1}, p[:4096]},
		{"descending", 12, 0, []uint32{1, 0}, p},
		{"duplicate", 12, 0, []uint32{1, 1}, p},
		{"bad shift", 11, 0, []uint32{0}, p[:2048]},
		{"address overflow", 12, 1<<64 - 4096, []uint32{0, 1}, p},
	} {
		if _, err := enc.Encode(nil, 0, tc.start, tc.shift, tc.indices, tc.pages); err == nil {
			t.Errorf("%s: encoded", tc.name)
		}
	}
}

func encodeCase(t testing.TB, tc frameCase) []byte {
	enc, err := NewFrameEncoder(tc.codec)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	b, err := enc.Encode(nil, 1, 0x400000, tc.shift, tc.indices, testPages(len(tc.indices), tc.shift, tc.kinds, 2))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFrameDecodeRefuses(t *testing.T) {
	text := encodeCase(t, frameCases[0]) // s2
	raw := encodeCase(t, frameCases[6])  // raw, zero pages, runs
	zst := encodeCase(t, frameCases[3])  // zstd
	mod := func(b []byte, f func(b []byte) []byte) []byte { return f(append([]byte{}, b...)) }
	for _, tc := range []struct {
		name  string
		frame []byte
		want  error
	}{
		{"empty", nil, ErrBadFrame},
		{"bad magic", mod(raw, func(b []byte) []byte { b[0] = 'X'; return b }), ErrBadFrame},
		{"bad version", mod(raw, func(b []byte) []byte { b[2] = 9; return b }), ErrBadFrame},
		{"bad codec", mod(raw, func(b []byte) []byte { b[3] = 7; return b }), ErrBadFrame},
		{"bad shift", mod(raw, func(b []byte) []byte { b[16] = 40; return b }), ErrBadFrame},
		{"huge payload length", mod(raw, func(b []byte) []byte { binary.LittleEndian.PutUint32(b[24:], 1<<31); return b }), ErrBadFrame},
		{"huge page count", mod(raw, func(b []byte) []byte { binary.LittleEndian.PutUint32(b[20:], 1<<30); return b }), ErrBadFrame},
		{"zero runs", mod(raw, func(b []byte) []byte { binary.LittleEndian.PutUint16(b[18:], 0); return b }), ErrBadFrame},
		{"truncated", raw[:len(raw)-1], ErrBadFrame},
		{"trailing byte", append(append([]byte{}, raw...), 0), ErrBadFrame},
		{"overlapping runs", mod(raw, func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[FrameHeaderSize+8:], 0)
			return b
		}), nil}, // a checksum or run error, both refusals
		{"raw payload bit flip", mod(raw, func(b []byte) []byte { b[len(b)-100] ^= 1; return b }), ErrFrameChecksum},
		{"round changed", mod(raw, func(b []byte) []byte { b[4]++; return b }), ErrFrameChecksum},
		{"vma changed", mod(text, func(b []byte) []byte { b[9]++; return b }), ErrFrameChecksum},
		{"checksum changed", mod(zst, func(b []byte) []byte { b[30]++; return b }), ErrFrameChecksum},
		{"zero flag flipped", mod(raw, func(b []byte) []byte {
			b[FrameHeaderSize+8*int(binary.LittleEndian.Uint16(b[18:]))] ^= 0x01
			return b
		}), ErrBadFrame}, // the payload no longer has the right length
		{"s2 payload damaged", mod(text, func(b []byte) []byte { b[len(b)-20] ^= 0xff; return b }), nil},
		{"zstd payload damaged", mod(zst, func(b []byte) []byte { b[len(b)-20] ^= 0xff; return b }), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewFrameDecoder().Decode(tc.frame)
			if err == nil {
				t.Fatal("decoded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !errors.Is(err, ErrBadFrame) && !errors.Is(err, ErrFrameChecksum) {
				t.Fatalf("error %v is neither ErrBadFrame nor ErrFrameChecksum", err)
			}
		})
	}
}

// A header that claims a huge frame must not make ReadFrame allocate it.
func TestReadFrameBoundsAllocation(t *testing.T) {
	h := make([]byte, FrameHeaderSize)
	copy(h, "PF")
	h[2], h[3], h[16] = FrameVersion, byte(CodecS2), 12
	binary.LittleEndian.PutUint16(h[18:], MaxFrameRuns)
	binary.LittleEndian.PutUint32(h[20:], MaxFramePages)
	binary.LittleEndian.PutUint32(h[24:], MaxFramePayload)
	var buf []byte
	_, err := ReadFrame(bytes.NewReader(h), &buf)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err %v, want unexpected EOF", err)
	}
	if cap(buf) > MaxFrameSize {
		t.Fatalf("buffer of %d bytes, max frame is %d", cap(buf), MaxFrameSize)
	}
	binary.LittleEndian.PutUint32(h[24:], MaxFramePayload+1)
	if _, err := ReadFrame(bytes.NewReader(h), &buf); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("oversized payload: %v", err)
	}
}

func TestFrameSteadyStateAllocations(t *testing.T) {
	for _, codec := range []Codec{CodecRaw, CodecS2, CodecZstd} {
		enc, _ := NewFrameEncoder(codec)
		dec := NewFrameDecoder()
		idx := seqIndices(0, 128, 1)
		pages := testPages(128, 12, "zrrt", 3)
		buf := make([]byte, 0, 1<<20)
		run := func() {
			b, err := enc.Encode(buf[:0], 1, 0, 12, idx, pages)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := dec.Decode(b); err != nil {
				t.Fatal(err)
			}
		}
		run()
		if n := testing.AllocsPerRun(20, run); n > 0 {
			t.Errorf("%v: %.1f allocations per encode+decode", codec, n)
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	// Small seeds: the fuzzer mutates (and minimizes) large inputs slowly.
	for _, tc := range frameCases {
		if len(tc.indices) > 6 {
			tc.indices = tc.indices[:6]
		}
		if tc.shift > 12 {
			tc.indices = tc.indices[:1]
		}
		f.Add(encodeCase(f, tc))
	}
	dec := NewFrameDecoder()
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := dec.Decode(b)
		if err != nil {
			if !errors.Is(err, ErrBadFrame) && !errors.Is(err, ErrFrameChecksum) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		n := 0
		if err := fr.Extents(func(addr uint64, k int, data []byte) error {
			if data != nil && len(data) != k<<fr.PageShift {
				t.Fatalf("extent of %d pages has %d bytes", k, len(data))
			}
			n += k
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if n != fr.NumPages {
			t.Fatalf("extents hold %d pages, frame %d", n, fr.NumPages)
		}
		// ReadFrame agrees with Decode on where the frame ends.
		var buf []byte
		rb, err := ReadFrame(bytes.NewReader(b), &buf)
		if err != nil || len(rb) != len(b) {
			t.Fatalf("ReadFrame: %d bytes, %v", len(rb), err)
		}
	})
}

func BenchmarkFrameEncodeS2(b *testing.B) {
	enc, _ := NewFrameEncoder(CodecS2)
	idx := seqIndices(0, 128, 1)
	pages := testPages(128, 12, "zrrt", 3)
	buf := make([]byte, 0, 1<<20)
	b.SetBytes(int64(len(pages)))
	for b.Loop() {
		if _, err := enc.Encode(buf[:0], 1, 0, 12, idx, pages); err != nil {
			b.Fatal(err)
		}
	}
}
