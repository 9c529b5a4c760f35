package image

// Page frames carry page contents outside protobuf: in image files and on the
// wire between two agents. Every frame stands on its own: it names its round,
// its VMA and its pages, says which pages are all zero (those carry no bytes),
// and is checksummed, so frames can be decoded in any order and in parallel.
//
// Byte layout of one frame (all integers little-endian):
//
//	offset size  field
//	     0    2  magic "PF" (0x50 0x46)
//	     2    1  version (FrameVersion, 1)
//	     3    1  codec of the payload: 0 raw, 1 s2 (block format), 2 zstd
//	     4    4  round (uint32)
//	     8    8  VMA start address (uint64); page i of the frame lives at
//	             start + index(i) << page shift
//	    16    1  page shift: log2 of the page size, 12 (4 KiB) to 16 (64 KiB)
//	    17    1  reserved, 0
//	    18    2  number of runs R (uint16), 1..MaxFrameRuns
//	    20    4  number of pages N (uint32), 1..MaxFramePages
//	    24    4  payload length P on the wire (uint32)
//	    28    8  checksum: xxhash64 of bytes [0,28), the runs, the zero
//	             bitmap and the uncompressed payload
//	    36  8*R  runs of page indices relative to the VMA start, ascending and
//	             not overlapping: first index (uint32), count (uint32); the
//	             counts add up to N
//	     .  ⌈N/8⌉ zero bitmap: bit i%8 of byte i/8 is set when the i-th page
//	             of the frame is all zero; such a page carries no bytes
//	     .    P  payload: the non-zero pages, in frame order, concatenated and
//	             encoded with the codec. Uncompressed it is exactly
//	             (N - zero pages) << page shift bytes, at most MaxFramePayload.
//	             A compressed payload is never longer than the raw one: the
//	             encoder falls back to raw per frame when compression does not
//	             pay.
//
// A decoder refuses a frame with ErrBadFrame (wrong magic, version, codec,
// lengths, runs or compressed data) or ErrFrameChecksum, and never allocates
// more than the limits below allow, whatever the lengths in the header claim.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Frame format constants.
const (
	FrameVersion = 1
	// FrameHeaderSize is the size of the fixed part of a frame header.
	FrameHeaderSize = 36
	// MaxFramePages bounds the pages of one frame (zero pages included).
	MaxFramePages = 1 << 14
	// MaxFrameRuns bounds the runs of one frame.
	MaxFrameRuns = 1 << 12
	// MaxFramePayload bounds the uncompressed payload of one frame.
	MaxFramePayload = 4 << 20
	// MinPageShift and MaxPageShift bound the page sizes a frame may carry.
	MinPageShift = 12
	MaxPageShift = 16
	// MaxFrameSize bounds a whole encoded frame.
	MaxFrameSize = FrameHeaderSize + 8*MaxFrameRuns + MaxFramePages/8 + MaxFramePayload
)

var frameMagic = [2]byte{'P', 'F'}

// Codec says how a frame's payload is encoded.
type Codec uint8

// The codecs. CodecS2 is the default; CodecZstd (SpeedFastest) trades CPU for
// fewer bytes on slow links; CodecRaw is chosen per frame when compression does
// not pay, and can be asked for outright.
const (
	CodecRaw  Codec = 0
	CodecS2   Codec = 1
	CodecZstd Codec = 2
)

func (c Codec) String() string {
	switch c {
	case CodecRaw:
		return "raw"
	case CodecS2:
		return "s2"
	case CodecZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// ParseCodec maps a codec name ("s2", "zstd", "raw") to a Codec.
func ParseCodec(name string) (Codec, error) {
	switch name {
	case "s2", "":
		return CodecS2, nil
	case "zstd":
		return CodecZstd, nil
	case "raw":
		return CodecRaw, nil
	}
	return 0, fmt.Errorf("unknown page codec %q (want s2, zstd or raw)", name)
}

// Errors of the frame decoder. ErrFrameChecksum is a frame whose contents were
// damaged; ErrBadFrame is one that does not follow the layout.
var (
	ErrBadFrame      = errors.New("bad page frame")
	ErrFrameChecksum = errors.New("page frame checksum mismatch")
)

// PageRun is a run of consecutive page indices, relative to a VMA start.
type PageRun struct {
	First, Count uint32
}

// Frame is a decoded page frame. Its slices belong to the FrameDecoder that
// produced it and are valid until that decoder's next Decode.
type Frame struct {
	Round     uint32
	Start     uint64 // VMA start address
	PageShift uint8
	Codec     Codec // codec of the payload on the wire
	Runs      []PageRun
	NumPages  int
	Zero      []byte // zero bitmap, one bit per page of the frame
	Data      []byte // the non-zero pages, in frame order, uncompressed
	WireSize  int    // size of the encoded frame
}

// IsZero reports whether the i-th page of the frame is all zero.
func (f *Frame) IsZero(i int) bool { return f.Zero[i>>3]&(1<<(i&7)) != 0 }

// Extents calls fn for each maximal stretch of pages that are contiguous in
// memory and of one kind: data holds their bytes, or is nil for zero pages.
// n is the number of pages. It stops at the first error fn returns.
func (f *Frame) Extents(fn func(addr uint64, n int, data []byte) error) error {
	ps := 1 << f.PageShift
	i, off := 0, 0
	for _, r := range f.Runs {
		for j := uint32(0); j < r.Count; {
			zero := f.IsZero(i)
			k := j + 1
			for k < r.Count && f.IsZero(i+int(k-j)) == zero {
				k++
			}
			n := int(k - j)
			addr := f.Start + uint64(r.First+j)<<f.PageShift
			var data []byte
			if !zero {
				data = f.Data[off : off+n*ps]
				off += n * ps
			}
			if err := fn(addr, n, data); err != nil {
				return err
			}
			i += n
			j = k
		}
	}
	return nil
}

// FrameEncoder builds frames. It keeps its compression state and scratch
// buffers between frames, so a steady stream of frames makes no garbage. A
// FrameEncoder is not safe for concurrent use; use one per goroutine.
type FrameEncoder struct {
	codec   Codec
	zstd    *zstd.Encoder
	payload []byte // the non-zero pages, gathered
	comp    []byte
	selComp []int32 // EncodeSplit's page selections
	selRaw  []int32
	runs    []PageRun
	digest  *xxhash.Digest
	zero    []byte // one zero page, for comparisons
}

// NewFrameEncoder returns an encoder that compresses with codec (falling back
// to raw per frame when compression does not pay).
func NewFrameEncoder(codec Codec) (*FrameEncoder, error) {
	e := &FrameEncoder{codec: codec, digest: xxhash.New()}
	switch codec {
	case CodecRaw, CodecS2:
	case CodecZstd:
		z, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderCRC(false),
			zstd.WithWindowSize(1<<20))
		if err != nil {
			return nil, fmt.Errorf("zstd encoder: %w", err)
		}
		e.zstd = z
	default:
		return nil, fmt.Errorf("new frame encoder: unknown codec %d", codec)
	}
	return e, nil
}

// Encode appends to dst one frame holding the pages at the given indices
// (relative to the VMA at start, strictly ascending) whose contents are
// pages, len(indices) pages of 1<<pageShift bytes each. All-zero pages are
// detected and sent as flags.
func (e *FrameEncoder) Encode(dst []byte, round uint32, start uint64, pageShift uint8, indices []uint32, pages []byte) ([]byte, error) {
	if err := checkEncode(start, pageShift, indices, pages); err != nil {
		return dst, err
	}
	return e.encode(dst, round, start, pageShift, indices, pages, nil, e.codec)
}

// EncodeSplit is Encode for a compressing encoder, except that the pages
// that look incompressible (see Incompressible) go into a frame of their
// own, raw, appended after the frame of the others: the compressor then
// never runs over random bytes it cannot shrink, and the receiver takes
// them as they are. It returns dst and the number of frames appended (1 or
// 2). With the raw codec it is Encode.
func (e *FrameEncoder) EncodeSplit(dst []byte, round uint32, start uint64, pageShift uint8, indices []uint32, pages []byte) ([]byte, int, error) {
	if err := checkEncode(start, pageShift, indices, pages); err != nil {
		return dst, 0, err
	}
	if e.codec == CodecRaw {
		out, err := e.encode(dst, round, start, pageShift, indices, pages, nil, CodecRaw)
		return out, 1, err
	}
	ps := 1 << pageShift
	e.selComp, e.selRaw = e.selComp[:0], e.selRaw[:0]
	for i := range indices {
		if Incompressible(pages[i*ps : (i+1)*ps]) {
			e.selRaw = append(e.selRaw, int32(i))
		} else {
			e.selComp = append(e.selComp, int32(i))
		}
	}
	switch {
	case len(e.selRaw) == 0:
		out, err := e.encode(dst, round, start, pageShift, indices, pages, nil, e.codec)
		return out, 1, err
	case len(e.selComp) == 0:
		out, err := e.encode(dst, round, start, pageShift, indices, pages, nil, CodecRaw)
		return out, 1, err
	}
	base := len(dst)
	dst, err := e.encode(dst, round, start, pageShift, indices, pages, e.selComp, e.codec)
	if err != nil {
		return dst[:base], 0, err
	}
	dst, err = e.encode(dst, round, start, pageShift, indices, pages, e.selRaw, CodecRaw)
	if err != nil {
		return dst[:base], 0, err
	}
	return dst, 2, nil
}

// Incompressible guesses, from 128 of its bytes, whether a page is
// random-looking data that no LZ compressor would shrink: random bytes show
// about 101 distinct values in 128 (rarely under 88), text and program data
// (pointers, small integers, code) far fewer. The sample is two runs of 64
// bytes, at the
// start and in the middle of the page: a few whole cache lines, which the
// compressor or the copy that follows reads anyway (scattered samples cost
// a memory fetch each). A page guessed wrong costs its compression, never
// its contents.
func Incompressible(page []byte) bool {
	const run = 64
	if len(page) < 2*run {
		return false
	}
	var seen [4]uint64
	for _, c := range page[:run] {
		seen[c>>6] |= 1 << (c & 63)
	}
	mid := len(page) / 2
	for _, c := range page[mid : mid+run] {
		seen[c>>6] |= 1 << (c & 63)
	}
	n := bits.OnesCount64(seen[0]) + bits.OnesCount64(seen[1]) + bits.OnesCount64(seen[2]) + bits.OnesCount64(seen[3])
	return n > 80
}

func checkEncode(start uint64, pageShift uint8, indices []uint32, pages []byte) error {
	n := len(indices)
	if pageShift < MinPageShift || pageShift > MaxPageShift {
		return fmt.Errorf("encode frame: page shift %d out of range", pageShift)
	}
	ps := 1 << pageShift
	if n == 0 || n > MaxFramePages {
		return fmt.Errorf("encode frame: %d pages (want 1..%d)", n, MaxFramePages)
	}
	if len(pages) != n*ps {
		return fmt.Errorf("encode frame: %d bytes for %d pages of %d", len(pages), n, ps)
	}
	for i := 1; i < n; i++ {
		if indices[i] <= indices[i-1] {
			return fmt.Errorf("encode frame: page indices not ascending at %d", i)
		}
	}
	last := PageRun{First: indices[n-1], Count: 1}
	if _, of := addrEnd(start, last, pageShift); of {
		return fmt.Errorf("encode frame: pages beyond the address space")
	}
	return nil
}

// encode appends one frame of the selected pages (sel: positions in
// indices and pages, ascending; nil: all) compressed with codec, falling
// back to raw when compression does not pay. The arguments are checked.
func (e *FrameEncoder) encode(dst []byte, round uint32, start uint64, pageShift uint8, indices []uint32, pages []byte, sel []int32, codec Codec) ([]byte, error) {
	n := len(indices)
	if sel != nil {
		n = len(sel)
	}
	at := func(k int) int {
		if sel != nil {
			return int(sel[k])
		}
		return k
	}
	ps := 1 << pageShift
	e.runs = e.runs[:0]
	for k := 0; k < n; k++ {
		idx := indices[at(k)]
		if l := len(e.runs); l > 0 && e.runs[l-1].First+e.runs[l-1].Count == idx {
			e.runs[l-1].Count++
			continue
		}
		e.runs = append(e.runs, PageRun{First: idx, Count: 1})
	}
	if len(e.runs) > MaxFrameRuns {
		return dst, fmt.Errorf("encode frame: %d runs (max %d)", len(e.runs), MaxFrameRuns)
	}
	if len(e.zero) < ps {
		e.zero = make([]byte, ps)
	}
	zeroPage := e.zero[:ps]

	base := len(dst)
	bitmapLen := (n + 7) / 8
	hdrLen := FrameHeaderSize + 8*len(e.runs) + bitmapLen
	dst = growLen(dst, hdrLen)
	h := dst[base:]
	clear(h)
	bitmap := h[FrameHeaderSize+8*len(e.runs):]
	data := 0
	for k := 0; k < n; k++ {
		i := at(k)
		if bytes.Equal(pages[i*ps:(i+1)*ps], zeroPage) {
			bitmap[k>>3] |= 1 << (k & 7)
			continue
		}
		data++
	}
	if data*ps > MaxFramePayload {
		return dst[:base], fmt.Errorf("encode frame: %d payload bytes (max %d)", data*ps, MaxFramePayload)
	}
	// gather appends the non-zero selected pages to b.
	gather := func(b []byte) []byte {
		for k := 0; k < n; k++ {
			if bitmap[k>>3]&(1<<(k&7)) != 0 {
				continue
			}
			i := at(k)
			b = append(b, pages[i*ps:(i+1)*ps]...)
		}
		return b
	}

	var payload, wire []byte
	inPlace := false
	if codec == CodecRaw || data == 0 {
		// The pages go straight after the header: no scratch copy.
		codec = CodecRaw
		dst = gather(dst)
		h = dst[base:]
		payload = dst[base+hdrLen:]
		wire, inPlace = payload, true
	} else {
		e.payload = gather(e.payload[:0])
		payload = e.payload
		switch codec {
		case CodecS2:
			if m := s2.MaxEncodedLen(len(payload)); cap(e.comp) < m {
				e.comp = make([]byte, m)
			}
			e.comp = s2.Encode(e.comp[:cap(e.comp)], payload)
		case CodecZstd:
			e.comp = e.zstd.EncodeAll(payload, e.comp[:0])
		}
		// Compression pays when it saves at least 1/32 of the bytes;
		// otherwise the receiver's decompression would be wasted work.
		if len(e.comp) < len(payload)-len(payload)/32 {
			wire = e.comp
		} else {
			codec, wire = CodecRaw, payload
		}
	}

	copy(h[0:2], frameMagic[:])
	h[2] = FrameVersion
	h[3] = byte(codec)
	binary.LittleEndian.PutUint32(h[4:], round)
	binary.LittleEndian.PutUint64(h[8:], start)
	h[16] = pageShift
	binary.LittleEndian.PutUint16(h[18:], uint16(len(e.runs)))
	binary.LittleEndian.PutUint32(h[20:], uint32(n))
	binary.LittleEndian.PutUint32(h[24:], uint32(len(wire)))
	for i, r := range e.runs {
		binary.LittleEndian.PutUint32(h[FrameHeaderSize+8*i:], r.First)
		binary.LittleEndian.PutUint32(h[FrameHeaderSize+8*i+4:], r.Count)
	}
	sum := frameSum(e.digest, h[:hdrLen], payload)
	binary.LittleEndian.PutUint64(h[28:], sum)
	if inPlace {
		return dst, nil
	}
	return append(dst[:base+hdrLen], wire...), nil
}

// Close releases the encoder's compression state.
func (e *FrameEncoder) Close() error {
	if e.zstd != nil {
		return e.zstd.Close()
	}
	return nil
}

// frameSum is the checksum over the header without its checksum field, the
// runs, the bitmap and the uncompressed payload.
func frameSum(d *xxhash.Digest, hdr, payload []byte) uint64 {
	d.Reset()
	d.Write(hdr[:28])
	d.Write(hdr[FrameHeaderSize:])
	d.Write(payload)
	return d.Sum64()
}

func addrEnd(start uint64, last PageRun, shift uint8) (uint64, bool) {
	endIdx := uint64(last.First) + uint64(last.Count)
	if endIdx > 1<<32 {
		return 0, true
	}
	hi, lo := bits.Mul64(endIdx, 1<<shift)
	if hi != 0 {
		return 0, true
	}
	end, carry := bits.Add64(start, lo, 0)
	return end, carry != 0
}

func growLen(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// FrameHeader is the fixed part of a frame header, enough to know how many
// bytes follow it.
type FrameHeader struct {
	Codec     Codec
	Round     uint32
	Start     uint64
	PageShift uint8
	NumRuns   int
	NumPages  int
	Payload   int // payload length on the wire
	Sum       uint64
}

// Rest is the number of bytes that follow the fixed header.
func (h *FrameHeader) Rest() int { return 8*h.NumRuns + (h.NumPages+7)/8 + h.Payload }

// ParseFrameHeader checks the fixed header b[:FrameHeaderSize] against the
// format's limits.
func ParseFrameHeader(b []byte) (FrameHeader, error) {
	var h FrameHeader
	if len(b) < FrameHeaderSize {
		return h, fmt.Errorf("%w: %d header bytes", ErrBadFrame, len(b))
	}
	if b[0] != frameMagic[0] || b[1] != frameMagic[1] {
		return h, fmt.Errorf("%w: bad magic %#x", ErrBadFrame, b[:2])
	}
	if b[2] != FrameVersion {
		return h, fmt.Errorf("%w: unknown version %d", ErrBadFrame, b[2])
	}
	h.Codec = Codec(b[3])
	if h.Codec > CodecZstd {
		return h, fmt.Errorf("%w: unknown codec %d", ErrBadFrame, b[3])
	}
	h.Round = binary.LittleEndian.Uint32(b[4:])
	h.Start = binary.LittleEndian.Uint64(b[8:])
	h.PageShift = b[16]
	if h.PageShift < MinPageShift || h.PageShift > MaxPageShift || b[17] != 0 {
		return h, fmt.Errorf("%w: page shift %d", ErrBadFrame, h.PageShift)
	}
	h.NumRuns = int(binary.LittleEndian.Uint16(b[18:]))
	h.NumPages = int(binary.LittleEndian.Uint32(b[20:]))
	h.Payload = int(binary.LittleEndian.Uint32(b[24:]))
	h.Sum = binary.LittleEndian.Uint64(b[28:])
	switch {
	case h.NumPages < 1 || h.NumPages > MaxFramePages:
		return h, fmt.Errorf("%w: %d pages", ErrBadFrame, h.NumPages)
	case h.NumRuns < 1 || h.NumRuns > MaxFrameRuns || h.NumRuns > h.NumPages:
		return h, fmt.Errorf("%w: %d runs", ErrBadFrame, h.NumRuns)
	case h.Payload > MaxFramePayload || h.Payload > h.NumPages<<h.PageShift:
		return h, fmt.Errorf("%w: payload of %d bytes", ErrBadFrame, h.Payload)
	case h.Codec == CodecRaw && h.Payload%(1<<h.PageShift) != 0:
		return h, fmt.Errorf("%w: raw payload of %d bytes", ErrBadFrame, h.Payload)
	}
	return h, nil
}

// FrameDecoder decodes frames, reusing its buffers between frames. It is not
// safe for concurrent use; use one per goroutine.
type FrameDecoder struct {
	zstd   *zstd.Decoder
	frame  Frame
	data   []byte
	digest *xxhash.Digest
	rd     []byte // ReadFrame's buffer
}

// NewFrameDecoder returns a decoder for frames of every codec.
func NewFrameDecoder() *FrameDecoder {
	return &FrameDecoder{digest: xxhash.New()}
}

// Close releases the decoder's decompression state.
func (d *FrameDecoder) Close() {
	if d.zstd != nil {
		d.zstd.Close()
	}
}

// Decode checks and decodes one whole frame, b. The returned Frame is valid
// until the next call. Trailing bytes after the frame are an error.
func (d *FrameDecoder) Decode(b []byte) (*Frame, error) {
	h, err := ParseFrameHeader(b)
	if err != nil {
		return nil, err
	}
	if len(b) != FrameHeaderSize+h.Rest() {
		return nil, fmt.Errorf("%w: %d bytes, header says %d", ErrBadFrame, len(b), FrameHeaderSize+h.Rest())
	}
	return d.decodeBody(&h, b)
}

// ReadFrame reads one frame from r into the decoder's buffer and returns its
// bytes (valid until the next ReadFrame) for Decode. At most MaxFrameSize
// bytes are buffered whatever the header claims. io.EOF means r ended
// cleanly between frames.
func (d *FrameDecoder) ReadFrame(r io.Reader) ([]byte, error) {
	return ReadFrame(r, &d.rd)
}

// ReadFrame reads one frame from r into *buf (grown as needed, never beyond
// MaxFrameSize) and returns it. io.EOF means r ended cleanly between frames;
// io.ErrUnexpectedEOF means it ended inside one.
func ReadFrame(r io.Reader, buf *[]byte) ([]byte, error) {
	b := *buf
	if cap(b) < FrameHeaderSize {
		b = make([]byte, FrameHeaderSize, 64<<10)
	}
	b = b[:FrameHeaderSize]
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	h, err := ParseFrameHeader(b)
	if err != nil {
		return nil, err
	}
	total := FrameHeaderSize + h.Rest()
	if cap(b) < total {
		// Grow geometrically: frame sizes vary by a few bytes, and growing
		// to each new maximum exactly would allocate again and again.
		nb := make([]byte, total, max(total, min(2*cap(b), MaxFrameSize)))
		copy(nb, b)
		b = nb
	}
	b = b[:total]
	*buf = b
	if _, err := io.ReadFull(r, b[FrameHeaderSize:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

func (d *FrameDecoder) decodeBody(h *FrameHeader, b []byte) (*Frame, error) {
	f := &d.frame
	*f = Frame{Round: h.Round, Start: h.Start, PageShift: h.PageShift, Codec: h.Codec,
		NumPages: h.NumPages, Runs: f.Runs[:0], WireSize: len(b)}
	off := FrameHeaderSize
	total := 0
	var next uint64
	for i := 0; i < h.NumRuns; i++ {
		r := PageRun{First: binary.LittleEndian.Uint32(b[off:]), Count: binary.LittleEndian.Uint32(b[off+4:])}
		off += 8
		if r.Count == 0 || (i > 0 && uint64(r.First) < next) {
			return nil, fmt.Errorf("%w: run %d [%d,+%d) empty or out of order", ErrBadFrame, i, r.First, r.Count)
		}
		next = uint64(r.First) + uint64(r.Count)
		total += int(r.Count)
		if total > h.NumPages {
			return nil, fmt.Errorf("%w: runs hold more than %d pages", ErrBadFrame, h.NumPages)
		}
		f.Runs = append(f.Runs, r)
	}
	if total != h.NumPages {
		return nil, fmt.Errorf("%w: runs hold %d pages, header says %d", ErrBadFrame, total, h.NumPages)
	}
	if _, of := addrEnd(h.Start, f.Runs[len(f.Runs)-1], h.PageShift); of {
		return nil, fmt.Errorf("%w: pages beyond the address space", ErrBadFrame)
	}
	bitmapLen := (h.NumPages + 7) / 8
	f.Zero = b[off : off+bitmapLen]
	if rem := h.NumPages & 7; rem != 0 && f.Zero[bitmapLen-1]>>rem != 0 {
		return nil, fmt.Errorf("%w: bits set past the last page", ErrBadFrame)
	}
	off += bitmapLen
	zeros := 0
	for _, z := range f.Zero {
		zeros += bits.OnesCount8(z)
	}
	want := (h.NumPages - zeros) << h.PageShift
	if want > MaxFramePayload {
		return nil, fmt.Errorf("%w: %d payload bytes", ErrBadFrame, want)
	}
	wire := b[off:]
	switch h.Codec {
	case CodecRaw:
		if len(wire) != want {
			return nil, fmt.Errorf("%w: raw payload of %d bytes, want %d", ErrBadFrame, len(wire), want)
		}
		f.Data = wire
	case CodecS2:
		if len(wire) >= want {
			return nil, fmt.Errorf("%w: s2 payload of %d bytes for %d", ErrBadFrame, len(wire), want)
		}
		if n, err := s2.DecodedLen(wire); err != nil || n != want {
			return nil, fmt.Errorf("%w: s2 payload decodes to %d bytes, want %d (%v)", ErrBadFrame, n, want, err)
		}
		if cap(d.data) < want {
			d.data = make([]byte, want)
		}
		out, err := s2.Decode(d.data[:want], wire)
		if err != nil || len(out) != want {
			return nil, fmt.Errorf("%w: s2: %v", ErrBadFrame, err)
		}
		f.Data = out
	case CodecZstd:
		if len(wire) >= want {
			return nil, fmt.Errorf("%w: zstd payload of %d bytes for %d", ErrBadFrame, len(wire), want)
		}
		if d.zstd == nil {
			z, err := zstd.NewReader(nil,
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderMaxMemory(MaxFramePayload),
				zstd.WithDecoderMaxWindow(MaxFramePayload),
				zstd.WithDecodeAllCapLimit(true))
			if err != nil {
				return nil, fmt.Errorf("zstd decoder: %w", err)
			}
			d.zstd = z
		}
		if cap(d.data) < want {
			d.data = make([]byte, want)
		}
		out, err := d.zstd.DecodeAll(wire, d.data[:0:want])
		if err != nil || len(out) != want {
			return nil, fmt.Errorf("%w: zstd payload decodes to %d bytes, want %d (%v)", ErrBadFrame, len(out), want, err)
		}
		f.Data = out
	}
	if sum := frameSum(d.digest, b[:off], f.Data); sum != h.Sum {
		return nil, fmt.Errorf("%w: round %d vma %#x: got %#x, header says %#x", ErrFrameChecksum, h.Round, h.Start, sum, h.Sum)
	}
	return f, nil
}
