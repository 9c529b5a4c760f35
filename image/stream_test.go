package image

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func sampleStream(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	task := &Task{
		Header: &Header{FormatVersion: FormatVersion, Arch: Arch_ARCH_AMD64, Endian: Endian_ENDIAN_LITTLE, WordSize: 8, PageSize: 4096, Pid: 42},
		Vmas:   []*VMA{{Start: 0x10000, End: 0x14000, Prot: 3, Kind: VMAKind_VMA_ANON_PRIVATE}},
		Cwd:    "/tmp",
	}
	if err := w.WriteTask(task); err != nil {
		t.Fatal(err)
	}
	enc, err := NewFrameEncoder(CodecS2)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	pages := make([]byte, 4*4096)
	copy(pages[4096:], bytes.Repeat([]byte("migrated"), 512))
	frame, err := enc.Encode(nil, 0, 0x10000, 12, []uint32{0, 1, 2, 3}, pages)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(frame, 4); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readAll(b []byte) (*Task, int, error) {
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, 0, err
	}
	task, err := r.ReadTask()
	if err != nil {
		return nil, 0, err
	}
	dec := NewFrameDecoder()
	defer dec.Close()
	n := 0
	for {
		f, err := r.NextFrame()
		if err == io.EOF {
			return task, n, nil
		}
		if err != nil {
			return nil, n, err
		}
		if _, err := dec.Decode(f); err != nil {
			return nil, n, err
		}
		n++
	}
}

func TestStreamRoundTrip(t *testing.T) {
	task, frames, err := readAll(sampleStream(t))
	if err != nil {
		t.Fatal(err)
	}
	if task.Header.Pid != 42 || task.Cwd != "/tmp" || len(task.Vmas) != 1 || frames != 1 {
		t.Fatalf("round trip lost data: %v, %d frames", task, frames)
	}
}

func TestStreamRefusesDamage(t *testing.T) {
	good := sampleStream(t)
	cases := []struct {
		name string
		mut  func([]byte) []byte
		want error
	}{
		{"empty", func(b []byte) []byte { return nil }, ErrTruncated},
		{"bad magic", func(b []byte) []byte { b[0] = 'X'; return b }, ErrBadMagic},
		{"unknown version", func(b []byte) []byte { b[8] = 9; return b }, ErrUnknownVersion},
		{"no end record", func(b []byte) []byte { return b[:len(b)-25] }, ErrTruncated},
		{"cut in the task", func(b []byte) []byte { return b[:30] }, ErrTruncated},
		{"bit flip in task", func(b []byte) []byte { b[24] ^= 0x10; return b }, ErrChecksum},
		{"bit flip in frame", func(b []byte) []byte { b[len(b)-40] ^= 1; return b }, ErrChecksum},
		{"huge length", func(b []byte) []byte { b[17], b[18], b[19], b[20] = 0xff, 0xff, 0xff, 0x7f; return b }, ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.mut(append([]byte(nil), good...))
			_, _, err := readAll(b)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestEveryBitFlipIsRefused(t *testing.T) {
	good := sampleStream(t)
	for i := 0; i < len(good); i++ {
		b := append([]byte(nil), good...)
		b[i] ^= 0x04
		if _, _, err := readAll(b); err == nil {
			t.Fatalf("flip at byte %d of %d was accepted", i, len(good))
		}
	}
}

func FuzzReadImage(f *testing.F) {
	good := sampleStream(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("MIGRIMG\x00\x01\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = readAll(b) // must not panic or allocate without bound
	})
}
