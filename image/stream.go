package image

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"google.golang.org/protobuf/proto"
)

// FormatVersion is the image format this build writes and the only one it reads.
const FormatVersion = 1

// Magic opens every image file.
var Magic = [8]byte{'M', 'I', 'G', 'R', 'I', 'M', 'G', 0}

// Record kinds of an image stream.
const (
	RecordTask  = 1
	RecordFrame = 2
	RecordEnd   = 3
)

// Limits on record bodies.
const (
	MaxTaskRecord = 256 << 20
	endRecordSize = 16
)

// Errors of the stream reader.
var (
	ErrBadMagic       = errors.New("image: not a migrated image (bad magic)")
	ErrUnknownVersion = errors.New("image: unknown format version")
	ErrChecksum       = errors.New("image: record checksum mismatch")
	ErrTruncated      = errors.New("image: truncated")
	ErrCorrupt        = errors.New("image: corrupt record")
)

// VersionError names the version a reader refused.
type VersionError struct{ Version uint32 }

func (e *VersionError) Error() string {
	return fmt.Sprintf("image: format version %d, this build reads %d", e.Version, FormatVersion)
}
func (e *VersionError) Is(target error) bool { return target == ErrUnknownVersion }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Writer writes an image stream.
type Writer struct {
	w      *bufio.Writer
	frames uint64
	pages  uint64
	task   bool
	err    error
	// Bytes counts what has been written.
	Bytes int64
}

// NewWriter writes the stream header to w.
func NewWriter(w io.Writer) (*Writer, error) {
	iw := &Writer{w: bufio.NewWriterSize(w, 1<<20)}
	var h [16]byte
	copy(h[:], Magic[:])
	binary.LittleEndian.PutUint32(h[8:], FormatVersion)
	if _, err := iw.w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("image: write header: %w", err)
	}
	iw.Bytes = 16
	return iw, nil
}

func (iw *Writer) record(kind byte, body []byte) error {
	if iw.err != nil {
		return iw.err
	}
	var h [5]byte
	h[0] = kind
	binary.LittleEndian.PutUint32(h[1:], uint32(len(body)))
	c := crc32.Update(0, castagnoli, h[:])
	c = crc32.Update(c, castagnoli, body)
	var t [4]byte
	binary.LittleEndian.PutUint32(t[:], c)
	for _, b := range [][]byte{h[:], body, t[:]} {
		if _, err := iw.w.Write(b); err != nil {
			iw.err = fmt.Errorf("image: write: %w", err)
			return iw.err
		}
	}
	iw.Bytes += int64(len(body)) + 9
	return nil
}

// WriteTask writes the task record; it must come first.
func (iw *Writer) WriteTask(t *Task) error {
	if iw.task {
		return errors.New("image: task record written twice")
	}
	b, err := proto.Marshal(t)
	if err != nil {
		return fmt.Errorf("image: encode task: %w", err)
	}
	if len(b) > MaxTaskRecord {
		return fmt.Errorf("image: task record of %d bytes exceeds %d", len(b), MaxTaskRecord)
	}
	iw.task = true
	return iw.record(RecordTask, b)
}

// WriteFrame writes one encoded page frame holding pages pages.
func (iw *Writer) WriteFrame(frame []byte, pages int) error {
	if !iw.task {
		return errors.New("image: page frame before the task record")
	}
	if len(frame) > MaxFrameSize {
		return fmt.Errorf("image: frame of %d bytes exceeds %d", len(frame), MaxFrameSize)
	}
	iw.frames++
	iw.pages += uint64(pages)
	return iw.record(RecordFrame, frame)
}

// Close writes the end record and flushes. It does not close the underlying writer.
func (iw *Writer) Close() error {
	if !iw.task {
		return errors.New("image: no task record")
	}
	var b [endRecordSize]byte
	binary.LittleEndian.PutUint64(b[0:], iw.frames)
	binary.LittleEndian.PutUint64(b[8:], iw.pages)
	if err := iw.record(RecordEnd, b[:]); err != nil {
		return err
	}
	if err := iw.w.Flush(); err != nil {
		return fmt.Errorf("image: flush: %w", err)
	}
	return nil
}

// Reader reads an image stream.
type Reader struct {
	r      *bufio.Reader
	buf    []byte
	frames uint64
	done   bool
	// Pages is the page count the end record declared (after EOF).
	Pages uint64
}

// NewReader checks the stream header.
func NewReader(r io.Reader) (*Reader, error) {
	ir := &Reader{r: bufio.NewReaderSize(r, 1<<20)}
	var h [16]byte
	if _, err := io.ReadFull(ir.r, h[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: header", ErrTruncated)
		}
		return nil, fmt.Errorf("image: read header: %w", err)
	}
	if [8]byte(h[:8]) != Magic {
		return nil, ErrBadMagic
	}
	if v := binary.LittleEndian.Uint32(h[8:]); v != FormatVersion {
		return nil, &VersionError{Version: v}
	}
	if binary.LittleEndian.Uint32(h[12:]) != 0 {
		return nil, fmt.Errorf("%w: reserved header bytes are not zero", ErrCorrupt)
	}
	return ir, nil
}

// next reads one record; the body is valid until the next call.
func (ir *Reader) next() (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(ir.r, h[:]); err != nil {
		return 0, nil, ir.eof(err)
	}
	kind, n := h[0], binary.LittleEndian.Uint32(h[1:])
	var limit uint32
	switch kind {
	case RecordTask:
		limit = MaxTaskRecord
	case RecordFrame:
		limit = MaxFrameSize
	case RecordEnd:
		limit = endRecordSize
	default:
		return 0, nil, fmt.Errorf("%w: kind %d", ErrCorrupt, kind)
	}
	if n > limit {
		return 0, nil, fmt.Errorf("%w: record of kind %d claims %d bytes (limit %d)", ErrCorrupt, kind, n, limit)
	}
	// Grow in steps so that a lying length on a short stream costs little.
	ir.buf = ir.buf[:0]
	for uint32(len(ir.buf)) < n {
		step := min(n-uint32(len(ir.buf)), 1<<20)
		off := len(ir.buf)
		ir.buf = append(ir.buf, make([]byte, step)...)
		if _, err := io.ReadFull(ir.r, ir.buf[off:]); err != nil {
			return 0, nil, ir.eof(err)
		}
	}
	var t [4]byte
	if _, err := io.ReadFull(ir.r, t[:]); err != nil {
		return 0, nil, ir.eof(err)
	}
	c := crc32.Update(0, castagnoli, h[:])
	c = crc32.Update(c, castagnoli, ir.buf)
	if c != binary.LittleEndian.Uint32(t[:]) {
		return 0, nil, fmt.Errorf("%w (record of kind %d, %d bytes)", ErrChecksum, kind, n)
	}
	return kind, ir.buf, nil
}

func (ir *Reader) eof(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: the stream ends before its end record", ErrTruncated)
	}
	return fmt.Errorf("image: read: %w", err)
}

// ReadTask reads the task record, which must come first.
func (ir *Reader) ReadTask() (*Task, error) {
	kind, body, err := ir.next()
	if err != nil {
		return nil, err
	}
	if kind != RecordTask {
		return nil, fmt.Errorf("%w: first record is of kind %d, want the task", ErrCorrupt, kind)
	}
	t := &Task{}
	if err := proto.Unmarshal(body, t); err != nil {
		return nil, fmt.Errorf("%w: task: %v", ErrCorrupt, err)
	}
	if t.Header == nil {
		return nil, fmt.Errorf("%w: task without header", ErrCorrupt)
	}
	if t.Header.FormatVersion != FormatVersion {
		return nil, &VersionError{Version: t.Header.FormatVersion}
	}
	return t, nil
}

// NextFrame returns the next encoded page frame (valid until the next call),
// or io.EOF after a good end record.
func (ir *Reader) NextFrame() ([]byte, error) {
	if ir.done {
		return nil, io.EOF
	}
	kind, body, err := ir.next()
	if err != nil {
		return nil, err
	}
	switch kind {
	case RecordFrame:
		ir.frames++
		return body, nil
	case RecordEnd:
		if frames := binary.LittleEndian.Uint64(body); frames != ir.frames {
			return nil, fmt.Errorf("%w: end record counts %d frames, read %d", ErrCorrupt, frames, ir.frames)
		}
		ir.Pages = binary.LittleEndian.Uint64(body[8:])
		ir.done = true
		return nil, io.EOF
	}
	return nil, fmt.Errorf("%w: record of kind %d after the task", ErrCorrupt, kind)
}
