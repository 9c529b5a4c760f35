package move

import (
	"fmt"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/inject"
	"github.com/migrated/migrated/transport"
)

// maxIovecs is the most iovecs one process_vm_writev takes (UIO_MAXIOV,
// include/uapi/linux/uio.h).
const maxIovecs = 1024

// extentWriter writes the data extents of a frame into the stub with one
// process_vm_writev, instead of one call per extent: the pages of a real
// task alternate between zero pages (not written) and data, so a frame of
// 128 pages holds tens of extents, and each call costs more than copying a
// few pages.
//
// It accepts only extents inside a VMA of the layout the destination
// applied last whose pages travel, the check restore.Process.WriteAt makes.
// When the call fails or comes up short, every extent is written again
// through WriteAt, which reports the precise error (and reads through
// /proc/PID/mem on a kernel without process_vm_writev).
type extentWriter struct {
	vmas   []*image.VMA // the layout last applied, by start address
	local  []unix.Iovec
	remote []unix.RemoteIovec
}

func (w *extentWriter) setLayout(vmas []*image.VMA) {
	w.vmas = append(w.vmas[:0], vmas...)
	sort.Slice(w.vmas, func(i, j int) bool { return w.vmas[i].Start < w.vmas[j].Start })
}

// check tells whether [addr, addr+n) lies in one VMA whose pages travel.
func (w *extentWriter) check(addr uint64, n int) error {
	end := addr + uint64(n)
	i := sort.Search(len(w.vmas), func(i int) bool { return w.vmas[i].End > addr })
	if i == len(w.vmas) || end < addr || addr < w.vmas[i].Start || end > w.vmas[i].End {
		return fmt.Errorf("pages %#x-%#x are in no VMA of the layout", addr, end)
	}
	if !w.vmas[i].PagesTravel() {
		return fmt.Errorf("pages %#x-%#x are in %#x-%#x, whose pages do not travel", addr, end, w.vmas[i].Start, w.vmas[i].End)
	}
	return nil
}

// write writes ext into pid; writeAt is the per-extent fallback.
func (w *extentWriter) write(pid int, ext []transport.Extent, writeAt func(addr uint64, data []byte) error) error {
	for _, e := range ext {
		if err := w.check(e.Addr, len(e.Data)); err != nil {
			return err
		}
	}
	for len(ext) > 0 {
		k := min(len(ext), maxIovecs)
		batch := ext[:k]
		ext = ext[k:]
		w.local, w.remote = w.local[:0], w.remote[:0]
		total := 0
		for _, e := range batch {
			l := unix.Iovec{Base: &e.Data[0]}
			l.SetLen(len(e.Data))
			w.local = append(w.local, l)
			w.remote = append(w.remote, unix.RemoteIovec{Base: uintptr(e.Addr), Len: len(e.Data)})
			total += len(e.Data)
		}
		n, err := inject.ProcessVMWritev(pid, w.local, w.remote)
		clear(w.local) // drop the references to the frame's buffer
		if err == nil && n == total {
			continue
		}
		for _, e := range batch {
			if err := writeAt(e.Addr, e.Data); err != nil {
				return err
			}
		}
	}
	return nil
}
