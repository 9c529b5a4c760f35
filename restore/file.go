package restore

import (
	"errors"
	"fmt"
	"io"

	"github.com/migrated/migrated/image"
)

// WriteFrame writes a decoded page frame into the process. fresh says that
// no page of the frame was written before (a zero page can then be skipped
// in anonymous memory, which starts zero).
func (p *Process) WriteFrame(f *image.Frame, fresh bool) error {
	v := p.mapped[f.Start]
	if v == nil {
		return fmt.Errorf("%w: pages for %#x, which is no VMA start", ErrBadImage, f.Start)
	}
	if !v.PagesTravel() {
		return fmt.Errorf("%w: pages for %#x-%#x, whose pages do not travel", ErrBadImage, v.Start, v.End)
	}
	return f.Extents(func(addr uint64, n int, data []byte) error {
		end := addr + uint64(n)*p.PageSize
		if addr < v.Start || end > v.End || end < addr {
			return fmt.Errorf("%w: pages %#x-%#x outside VMA %#x-%#x", ErrBadImage, addr, end, v.Start, v.End)
		}
		if data == nil {
			anon := v.Kind == image.VMAKind_VMA_ANON_PRIVATE || v.Kind == image.VMAKind_VMA_HEAP ||
				v.Kind == image.VMAKind_VMA_STACK || v.Kind == image.VMAKind_VMA_ANON_SHARED
			if fresh && anon {
				return nil
			}
			return p.ZeroPages(v, addr, n)
		}
		return p.WritePages(addr, data)
	})
}

// RestoreStats reports one restore from an image.
type RestoreStats struct {
	Pages uint64
}

// FromImage builds a process from an image stream and leaves it stopped,
// ready for Resume. On any error nothing is left behind.
func FromImage(r io.Reader, opts Options) (*Process, *RestoreStats, error) {
	ir, err := image.NewReader(r)
	if err != nil {
		return nil, nil, err
	}
	t, err := ir.ReadTask()
	if err != nil {
		return nil, nil, err
	}
	p, err := Start(t, opts)
	if err != nil {
		return nil, nil, err
	}
	st := &RestoreStats{}
	fail := func(err error) (*Process, *RestoreStats, error) {
		p.Kill()
		return nil, nil, err
	}
	if err := p.MapVMAs(t.Vmas); err != nil {
		return fail(err)
	}
	dec := image.NewFrameDecoder()
	defer dec.Close()
	for {
		b, err := ir.NextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(err)
		}
		f, err := dec.Decode(b)
		if err != nil {
			return fail(fmt.Errorf("image: %w", err))
		}
		if err := p.WriteFrame(f, true); err != nil {
			return fail(err)
		}
		st.Pages += uint64(f.NumPages)
	}
	if err := p.Finish(); err != nil {
		return nil, nil, err
	}
	return p, st, nil
}
