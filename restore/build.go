package restore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/inject"
	"golang.org/x/sys/unix"
)

// writeStr puts a NUL-terminated string into the scratch page.
func (p *Process) writeScratch(b []byte) (uint64, error) {
	if uint64(len(b)) > p.PageSize {
		return 0, fmt.Errorf("argument of %d bytes does not fit the scratch page", len(b))
	}
	if err := inject.WriteMem(p.PID, p.scratch, b); err != nil {
		return 0, err
	}
	return p.scratch, nil
}

func cstr(s string) []byte { return append([]byte(s), 0) }

// fillProt is the protection a VMA gets while its pages are written.
func fillProt(v *image.VMA) uint64 {
	if v.PagesTravel() {
		return uint64(v.Prot) | unix.PROT_READ | unix.PROT_WRITE
	}
	return uint64(v.Prot)
}

// MapVMAs maps every VMA of the task that is not mapped yet, writable while
// pages are written into it. Special mappings were placed by Start.
func (p *Process) MapVMAs(vmas []*image.VMA) error {
	p.noteShm(vmas)
	for _, v := range vmas {
		if v.Special() || p.mapped[v.Start] != nil {
			continue
		}
		if err := p.mapRange(v, v.Start, v.End, false); err != nil {
			return err
		}
		p.mapped[v.Start] = v
	}
	return nil
}

// noteShm records the size each shared anonymous object needs.
func (p *Process) noteShm(vmas []*image.VMA) {
	for _, v := range vmas {
		if v.Kind == image.VMAKind_VMA_ANON_SHARED {
			p.shmSize[v.Shmid] = max(p.shmSize[v.Shmid], v.Pgoff+v.End-v.Start)
		}
	}
}

// ApplyLayout makes the new process's address space follow the task's
// between pre-copy rounds: addresses no VMA covers any more are unmapped,
// fresh ranges (new or replaced mappings) are mapped anew, and every other
// address keeps its contents (a split or merge of VMAs moves no data).
// fresh holds start, end pairs.
func (p *Process) ApplyLayout(vmas []*image.VMA, fresh []uint64) error {
	if len(fresh)%2 != 0 {
		return fmt.Errorf("%w: odd fresh range list", ErrBadImage)
	}
	p.noteShm(vmas)
	// Unmap what the task no longer maps.
	var cover []*image.VMA
	for _, v := range vmas {
		if !v.Special() {
			cover = append(cover, v)
		}
	}
	sort.Slice(cover, func(i, j int) bool { return cover[i].Start < cover[j].Start })
	for _, old := range p.mapped {
		for _, gap := range uncovered(old.Start, old.End, cover) {
			if _, err := p.call("munmap", p.sc().Munmap, gap[0], gap[1]-gap[0]); err != nil {
				return fmt.Errorf("unmap %#x-%#x: %w", gap[0], gap[1], err)
			}
		}
	}
	// Map the fresh parts, and what was never mapped.
	next := map[uint64]*image.VMA{}
	for _, v := range cover {
		wasMapped := p.covered(v.Start, v.End)
		for i := 0; i+1 < len(fresh); i += 2 {
			lo, hi := max(v.Start, fresh[i]), min(v.End, fresh[i+1])
			if lo < hi && wasMapped {
				if err := p.mapRange(v, lo, hi, true); err != nil {
					return err
				}
			}
		}
		if !wasMapped {
			if err := p.mapRange(v, v.Start, v.End, true); err != nil {
				return err
			}
		}
		next[v.Start] = v
	}
	p.mapped = next
	return nil
}

// covered tells whether [lo, hi) lies wholly inside the mapped VMAs.
func (p *Process) covered(lo, hi uint64) bool {
	var vs []*image.VMA
	for _, v := range p.mapped {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].Start < vs[j].Start })
	return len(uncovered(lo, hi, vs)) == 0
}

// uncovered returns the parts of [lo, hi) no VMA of sorted covers.
func uncovered(lo, hi uint64, sorted []*image.VMA) [][2]uint64 {
	var out [][2]uint64
	cur := lo
	for _, v := range sorted {
		if v.End <= cur || v.Start >= hi {
			continue
		}
		if v.Start > cur {
			out = append(out, [2]uint64{cur, v.Start})
		}
		cur = max(cur, v.End)
		if cur >= hi {
			break
		}
	}
	if cur < hi {
		out = append(out, [2]uint64{cur, hi})
	}
	return out
}

// mapRange maps [lo, hi) of VMA v in the new process, writable while it is
// filled. replace maps over whatever is there (MAP_FIXED); otherwise the
// range must be free (MAP_FIXED_NOREPLACE).
func (p *Process) mapRange(v *image.VMA, lo, hi uint64, replace bool) error {
	sc := p.sc()
	if v.End <= v.Start || lo%p.PageSize != 0 || hi%p.PageSize != 0 || lo < v.Start || hi > v.End || lo >= hi {
		return fmt.Errorf("%w: VMA %#x-%#x (range %#x-%#x)", ErrBadImage, v.Start, v.End, lo, hi)
	}
	if p.stub != 0 && lo < p.stub+2*p.PageSize && p.stub < hi {
		return fmt.Errorf("%w: VMA %#x-%#x overlaps the stub page at %#x", ErrStubInTheWay, v.Start, v.End, p.stub)
	}
	size := hi - lo
	prot := fillProt(v)
	flags := uint64(unix.MAP_FIXED_NOREPLACE)
	if replace {
		flags = unix.MAP_FIXED
	}
	if v.Flags&0x0100 != 0 {
		flags |= unix.MAP_GROWSDOWN
	}
	fd := ^uint64(0)
	off := uint64(0)
	closeFd := false
	switch v.Kind {
	case image.VMAKind_VMA_ANON_PRIVATE, image.VMAKind_VMA_HEAP, image.VMAKind_VMA_STACK:
		flags |= unix.MAP_PRIVATE | unix.MAP_ANONYMOUS
	case image.VMAKind_VMA_ANON_SHARED:
		// One memfd per shared object, so that VMAs of the same object
		// share their pages again.
		f, ok := p.shmFds[v.Shmid]
		if !ok {
			name, err := p.writeScratch(cstr("migrated-shm"))
			if err != nil {
				return err
			}
			if f, err = p.call("memfd_create", sc.MemfdCreate, name, unix.MFD_CLOEXEC); err != nil {
				return err
			}
			if _, err := p.call("ftruncate", sc.Ftruncate, f, p.shmSize[v.Shmid]); err != nil {
				return err
			}
			p.shmFds[v.Shmid] = f
		}
		fd, off = f, v.Pgoff+(lo-v.Start)
		flags |= unix.MAP_SHARED
	case image.VMAKind_VMA_FILE_PRIVATE, image.VMAKind_VMA_FILE_SHARED:
		name := v.Path
		if v.Deleted {
			var err error
			if name, err = p.deletedFile(v); err != nil {
				return err
			}
		} else if err := checkFile(v.Path, v.File); err != nil {
			return fmt.Errorf("mapping %#x-%#x: %w", v.Start, v.End, err)
		}
		mode := uint64(unix.O_RDONLY)
		if v.Kind == image.VMAKind_VMA_FILE_SHARED && (v.Prot&unix.PROT_WRITE != 0 || v.Deleted) {
			mode = unix.O_RDWR
		}
		path, err := p.writeScratch(cstr(name))
		if err != nil {
			return err
		}
		f, err := p.call("openat "+v.Path, sc.Openat, uint64(atFdcwd), path, mode|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		fd, off, closeFd = f, v.Pgoff+(lo-v.Start), true
		if v.Kind == image.VMAKind_VMA_FILE_SHARED {
			flags |= unix.MAP_SHARED
		} else {
			flags |= unix.MAP_PRIVATE
		}
	default:
		return fmt.Errorf("%w: VMA %#x-%#x of kind %v", ErrBadImage, v.Start, v.End, v.Kind)
	}
	if p.Arch.MmapUsesPages() {
		off /= 4096
	}
	got, err := p.call("mmap", sc.Mmap, lo, size, prot, flags, fd, off)
	if closeFd {
		_, _ = p.call("close", sc.Close, fd)
	}
	if err != nil {
		var se *inject.SyscallError
		if errors.As(err, &se) && se.Errno == unix.EEXIST {
			return fmt.Errorf("map %#x-%#x: the range is taken in the new process: %w", lo, hi, ErrBadImage)
		}
		return fmt.Errorf("map %#x-%#x (%s): %w", lo, hi, v.Path, err)
	}
	if got != lo {
		return fmt.Errorf("map %#x-%#x: the kernel placed it at %#x", lo, hi, got)
	}
	return nil
}

// AT_FDCWD as an unsigned argument.
const atFdcwd = uint64(0xffffffffffffff9c)

// checkFile verifies that path here is the file the task had: same size
// and modification time (inode numbers differ between hosts).
func checkFile(path string, id *image.FileIdentity) error {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrFileChanged, path, err)
	}
	if id == nil {
		return nil
	}
	if st.Size != id.Size || st.Mtim.Nano() != id.MtimeNs {
		return fmt.Errorf("%w: %s has size %d and mtime %d here, %d and %d in the image",
			ErrFileChanged, path, st.Size, st.Mtim.Nano(), id.Size, id.MtimeNs)
	}
	return nil
}

// WritePages writes n pages at addr (inside a mapped VMA) from data.
func (p *Process) WritePages(addr uint64, data []byte) error {
	return inject.WriteMem(p.PID, addr, data)
}

// vmaAt finds the mapped VMA holding [addr, addr+size).
func (p *Process) vmaAt(addr, size uint64) (*image.VMA, error) {
	for _, v := range p.mapped {
		if addr >= v.Start && addr+size <= v.End && addr+size >= addr {
			return v, nil
		}
	}
	return nil, fmt.Errorf("%w: pages %#x-%#x are in no VMA", ErrBadImage, addr, addr+size)
}

// WriteAt writes page data at addr: it must lie inside one VMA whose pages
// travel.
func (p *Process) WriteAt(addr uint64, data []byte) error {
	v, err := p.vmaAt(addr, uint64(len(data)))
	if err != nil {
		return err
	}
	if !v.PagesTravel() {
		return fmt.Errorf("%w: pages for %#x-%#x, whose pages do not travel", ErrBadImage, v.Start, v.End)
	}
	return inject.WriteMem(p.PID, addr, data)
}

// ZeroAt makes size bytes of pages at addr zero.
func (p *Process) ZeroAt(addr, size uint64) error {
	v, err := p.vmaAt(addr, size)
	if err != nil {
		return err
	}
	return p.ZeroPages(v, addr, int(size/p.PageSize))
}

// ZeroPages makes n pages at addr zero again (a page that was sent in an
// earlier round and is zero now): MADV_DONTNEED on private anonymous
// memory, explicit zeros elsewhere.
func (p *Process) ZeroPages(v *image.VMA, addr uint64, n int) error {
	switch v.Kind {
	case image.VMAKind_VMA_ANON_PRIVATE, image.VMAKind_VMA_HEAP, image.VMAKind_VMA_STACK:
		_, err := p.call("madvise", p.sc().Madvise, addr, uint64(n)*p.PageSize, unix.MADV_DONTNEED)
		return err
	}
	return inject.WriteMem(p.PID, addr, make([]byte, uint64(n)*p.PageSize))
}

// protectFinal gives every mapped VMA its own protection.
func (p *Process) protectFinal() error {
	for _, v := range p.mapped {
		if fillProt(v) == uint64(v.Prot) {
			continue
		}
		if _, err := p.call("mprotect", p.sc().Mprotect, v.Start, v.End-v.Start, uint64(v.Prot)); err != nil {
			return fmt.Errorf("protect %#x-%#x: %w", v.Start, v.End, err)
		}
	}
	for id, fd := range p.shmFds {
		if _, err := p.call("close", p.sc().Close, fd); err != nil {
			return err
		}
		delete(p.shmFds, id)
	}
	return nil
}

// Kill removes the half-built process: SIGKILL, then, as its tracer, reap
// every thread (the others before the leader, whose death the kernel
// reports last). It returns once nothing of it is left.
func (p *Process) Kill() {
	if p.done {
		return
	}
	p.done = true
	p.unlinkDeleted()
	if p.PID > 0 {
		_ = unix.Kill(p.PID, unix.SIGKILL)
		for i := len(p.threads) - 1; i >= 1; i-- {
			p.threads[i].th.WaitGone()
		}
		if p.leader != nil {
			p.leader.WaitGone()
		}
	}
	p.tracer.Close()
}

// deletedFile recreates the unlinked file a mapping had, once per file (by
// inode): zero-filled to the mapping's extent, beside where it was; the
// mapping's pages, which all travel, then fill it. The name is unlinked
// when the process is finished (unlinkDeleted), leaving the task a mapping
// of a deleted file again.
func (p *Process) deletedFile(v *image.VMA) (string, error) {
	key := uint64(0)
	if v.File != nil {
		key = v.File.Ino
	}
	if name, ok := p.deleted[key]; ok && key != 0 {
		if err := os.Truncate(name, int64(max(fileSize(name), v.Pgoff+v.End-v.Start))); err != nil {
			return "", err
		}
		return name, nil
	}
	f, err := os.OpenFile(v.Path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		f, err = os.CreateTemp(filepath.Dir(v.Path), "."+filepath.Base(v.Path)+".migrated-*")
		if err != nil {
			return "", fmt.Errorf("recreate deleted file %s: %w", v.Path, err)
		}
	}
	name := f.Name()
	err = f.Truncate(int64(v.Pgoff + v.End - v.Start))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	if p.deleted == nil {
		p.deleted = map[uint64]string{}
	}
	p.deleted[key] = name
	return name, nil
}

func fileSize(name string) uint64 {
	st, err := os.Stat(name)
	if err != nil {
		return 0
	}
	return uint64(st.Size())
}

// unlinkDeleted removes the names of recreated deleted files.
func (p *Process) unlinkDeleted() {
	for k, name := range p.deleted {
		os.Remove(name)
		delete(p.deleted, k)
	}
}
