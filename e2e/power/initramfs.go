package power

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Initramfs is an initramfs image under construction: a newc cpio archive
// (the "new ASCII" format the kernel unpacks, see
// Documentation/driver-api/early-userspace/buffer-format.rst). Parent
// directories are created implicitly.
type Initramfs struct {
	entries map[string]cpioEntry
}

type cpioEntry struct {
	mode         uint32 // file type and permission bits, as in stat(2)
	data         []byte
	rmajor, rmin uint32
}

// cpio mode bits, from include/uapi/linux/stat.h.
const (
	cpioDir  = 0o040000
	cpioReg  = 0o100000
	cpioChr  = 0o020000
	cpioLink = 0o120000
)

// NewInitramfs returns an empty image.
func NewInitramfs() *Initramfs {
	return &Initramfs{entries: map[string]cpioEntry{}}
}

func cleanName(name string) (string, error) {
	n := strings.TrimPrefix(path.Clean("/"+name), "/")
	if n == "" || n == "." {
		return "", fmt.Errorf("initramfs: bad path %q", name)
	}
	return n, nil
}

func (r *Initramfs) add(name string, e cpioEntry) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	for d := path.Dir(n); d != "." && d != "/"; d = path.Dir(d) {
		if old, ok := r.entries[d]; ok && old.mode&0o170000 != cpioDir {
			return fmt.Errorf("initramfs: %s is not a directory", d)
		}
		if _, ok := r.entries[d]; !ok {
			r.entries[d] = cpioEntry{mode: cpioDir | 0o755}
		}
	}
	r.entries[n] = e
	return nil
}

// AddDir adds a directory.
func (r *Initramfs) AddDir(name string, perm fs.FileMode) error {
	return r.add(name, cpioEntry{mode: cpioDir | uint32(perm.Perm())})
}

// AddFile adds a regular file; perm is its permission bits.
func (r *Initramfs) AddFile(name string, perm fs.FileMode, data []byte) error {
	return r.add(name, cpioEntry{mode: cpioReg | uint32(perm.Perm()), data: data})
}

// AddSymlink adds a symbolic link to target.
func (r *Initramfs) AddSymlink(name, target string) error {
	return r.add(name, cpioEntry{mode: cpioLink | 0o777, data: []byte(target)})
}

// AddCharDev adds a character device node.
func (r *Initramfs) AddCharDev(name string, perm fs.FileMode, major, minor uint32) error {
	return r.add(name, cpioEntry{mode: cpioChr | uint32(perm.Perm()), rmajor: major, rmin: minor})
}

// WriteTo writes the archive, parents before children, ending with the
// TRAILER!!! entry.
func (r *Initramfs) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := &countWriter{w: bw}
	names := make([]string, 0, len(r.entries))
	for n := range r.entries {
		names = append(names, n)
	}
	sort.Strings(names) // "a" sorts before "a/b": parents come first
	ino := uint32(1)
	for _, n := range names {
		e := r.entries[n]
		nlink := uint32(1)
		if e.mode&0o170000 == cpioDir {
			nlink = 2
		}
		if err := writeCPIOEntry(cw, n, ino, nlink, e); err != nil {
			return cw.n, err
		}
		ino++
	}
	if err := writeCPIOEntry(cw, "TRAILER!!!", 0, 1, cpioEntry{}); err != nil {
		return cw.n, err
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("initramfs: %w", err)
	}
	return cw.n, nil
}

func writeCPIOEntry(w *countWriter, name string, ino, nlink uint32, e cpioEntry) error {
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, e.rmajor, e.rmin, len(name)+1, 0)
	if _, err := io.WriteString(w, hdr+name+"\x00"); err != nil {
		return fmt.Errorf("initramfs: write %s: %w", name, err)
	}
	if err := w.pad4(); err != nil {
		return err
	}
	if _, err := w.Write(e.data); err != nil {
		return fmt.Errorf("initramfs: write %s: %w", name, err)
	}
	return w.pad4()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

func (c *countWriter) pad4() error {
	if p := (4 - c.n%4) % 4; p > 0 {
		if _, err := c.Write(make([]byte, p)); err != nil {
			return fmt.Errorf("initramfs: pad: %w", err)
		}
	}
	return nil
}
