package checkpoint

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/migrated/migrated/image"
)

// DumpOptions of Dump.
type DumpOptions struct {
	// LeaveRunning thaws the task after the image is complete instead of
	// killing it.
	LeaveRunning bool
	// Codec for page frames: "s2" (the default when empty), "zstd" or "raw".
	Codec string
	// Manifest, when set, fills the task's manifest (the caller owns the
	// capability analysis; see compat).
	Manifest func(*image.Task) (*image.Manifest, error)
}

// DumpStats reports one dump.
type DumpStats struct {
	Pages       uint64
	MemoryBytes uint64
	ImageBytes  int64
	Frames      int
	Frozen      time.Duration // from freeze to kill or thaw
	Total       time.Duration
	// Injected is how many system calls and code runs the capture
	// injected into the task.
	Injected int
}

// Dump checkpoints pid into w as an image stream. The task is checked
// before it is touched; any failure afterwards thaws it, untouched. On
// success the task is killed, or thawed with LeaveRunning.
func Dump(pid int, w io.Writer, opts DumpOptions) (*image.Task, *DumpStats, error) {
	start := time.Now()
	if err := Preflight(pid); err != nil {
		return nil, nil, err
	}
	f, err := Freeze(pid)
	if err != nil {
		return nil, nil, err
	}
	frozenAt := time.Now()
	task, st, err := f.dump(w, opts)
	if err != nil {
		if terr := f.Thaw(); terr != nil {
			return nil, nil, fmt.Errorf("%w (and thawing failed: %v)", err, terr)
		}
		return nil, nil, err
	}
	if opts.LeaveRunning {
		err = f.Thaw()
	} else {
		err = f.Kill()
	}
	st.Frozen = time.Since(frozenAt)
	st.Total = time.Since(start)
	st.Injected = f.Injected
	if err == nil && !opts.LeaveRunning {
		waitPIDFree(pid, 3*time.Second)
	}
	return task, st, err
}

func (f *Frozen) dump(w io.Writer, opts DumpOptions) (*image.Task, *DumpStats, error) {
	task, err := f.Capture()
	if err != nil {
		return nil, nil, err
	}
	if opts.Manifest != nil {
		if task.Manifest, err = opts.Manifest(task); err != nil {
			return nil, nil, err
		}
	}
	iw, err := image.NewWriter(w)
	if err != nil {
		return nil, nil, err
	}
	if err := iw.WriteTask(task); err != nil {
		return nil, nil, err
	}
	name := opts.Codec
	if name == "" {
		name = "s2"
	}
	codec, err := image.ParseCodec(name)
	if err != nil {
		return nil, nil, err
	}
	enc, err := image.NewFrameEncoder(codec)
	if err != nil {
		return nil, nil, err
	}
	defer enc.Close()
	pr, err := NewPageReader(f.PID, f.PageSize)
	if err != nil {
		return nil, nil, err
	}
	defer pr.Close()
	shift := uint8(0)
	for ps := f.PageSize; ps > 1; ps >>= 1 {
		shift++
	}
	st := &DumpStats{}
	var frame []byte
	for _, v := range task.Vmas {
		idx, err := pr.Present(v)
		if err != nil {
			return nil, nil, err
		}
		err = pr.Read(v, idx, func(b *PageBatch) error {
			frame, err = enc.Encode(frame[:0], 0, v.Start, shift, b.Indices, b.Data)
			if err != nil {
				return err
			}
			st.Frames++
			return iw.WriteFrame(frame, len(b.Indices))
		})
		if err != nil {
			return nil, nil, fmt.Errorf("pages of %#x-%#x: %w", v.Start, v.End, err)
		}
	}
	if err := iw.Close(); err != nil {
		return nil, nil, err
	}
	st.Pages = pr.Pages
	st.MemoryBytes = pr.Pages * f.PageSize
	st.ImageBytes = iw.Bytes
	return task, st, nil
}

// waitPIDFree waits (bounded) until the killed task's PID is gone from
// /proc, so that a restore right after the checkpoint finds it free. The
// task's parent has to reap it; when it does not in time, the PID stays
// taken and a restore says so.
func waitPIDFree(pid int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
