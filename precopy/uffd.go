package precopy

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"github.com/migrated/migrated/checkpoint"
	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/internal/procfs"
	"github.com/migrated/migrated/internal/uffd"
	"golang.org/x/sys/unix"
)

// uffdTracker tracks writes with a userfaultfd of the task's mm in
// asynchronous write-protect mode: the kernel resolves a write fault on a
// protected page itself (no thread of ours waits on the fd) and clears the
// page's uffd-wp bit, which PAGEMAP_SCAN reports as PAGE_IS_WRITTEN and, in
// the same walk, sets again (PM_SCAN_WP_MATCHING).
//
// The userfaultfd must belong to the task's mm, so it is created inside the
// task by an injected userfaultfd(2), copied to us with pidfd_getfd(2) and
// closed in the task again: afterwards the task holds no trace of it but the
// registration of its VMAs, which Close undoes.
type uffdTracker struct {
	pid      int
	uffd     int
	pagemap  *os.File
	features uint64
	// untrackable are ranges the kernel refused to register: they are
	// reported Fresh by every Sync.
	untrackable Ranges
	vec         []uffd.PageRegion
	armed       bool
	// Stats
	Scans int
}

// Features the tracker asks for; WP_HUGETLBFS_SHMEM is added when the
// kernel has it (write-protect of shared anonymous memory).
const uffdWantFeatures = uffd.FeatureWPAsync | uffd.FeatureWPUnpopulated

// newUFFDTracker creates the task's userfaultfd (freezing the task for the
// few injected calls this takes) and enables asynchronous write-protect on
// it. It does not register anything yet: the first Sync does.
func newUFFDTracker(pid int) (*uffdTracker, error) {
	supported, err := uffdSupportedFeatures()
	if err != nil {
		return nil, err
	}
	if supported&uffdWantFeatures != uffdWantFeatures {
		return nil, fmt.Errorf("userfaultfd features %#x lack WP_ASYNC|WP_UNPOPULATED: %w", supported, ErrUnavailable)
	}
	if err := pagemapScanProbe(); err != nil {
		return nil, err
	}
	if err := noSeccomp(pid); err != nil {
		return nil, err
	}
	fd, err := takeUserfaultfd(pid)
	if err != nil {
		return nil, err
	}
	t := &uffdTracker{pid: pid, uffd: fd, vec: make([]uffd.PageRegion, 4096)}
	t.features = uffdWantFeatures | supported&uffd.FeatureWPHugetlbfsShmem
	api := uffd.APIArgs{API: uffd.API, Features: t.features}
	if err := ioctlPtr(fd, uffd.ReqAPI, unsafe.Pointer(&api)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("UFFDIO_API on the userfaultfd of %d: %w", pid, err)
	}
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open pagemap of %d: %w", pid, err)
	}
	t.pagemap = pm
	return t, nil
}

// pagemapScanProbe checks that PAGEMAP_SCAN exists (it came with WP_ASYNC,
// Linux 6.7), on our own pagemap and the first page of the address space
// (never mapped), before the task is touched.
func pagemapScanProbe() error {
	pm, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return fmt.Errorf("%w: %w", err, ErrUnavailable)
	}
	defer pm.Close()
	t := &uffdTracker{pid: os.Getpid(), pagemap: pm, vec: make([]uffd.PageRegion, 1)}
	if err := t.scan(Range{0, uint64(os.Getpagesize())}, 0, 0, uffd.PageIsPresent, uffd.PageIsPresent, func(uffd.PageRegion) {}); err != nil {
		return fmt.Errorf("%w: %w", err, ErrUnavailable)
	}
	return nil
}

// uffdSupportedFeatures asks the kernel which userfaultfd features it has,
// on a throwaway userfaultfd of our own (UFFDIO_API may be called once per
// fd, so the task's fd cannot be asked first).
func uffdSupportedFeatures() (uint64, error) {
	fd, err := uffd.OpenSelf()
	if err != nil {
		return 0, fmt.Errorf("%w: %w", err, ErrUnavailable)
	}
	defer unix.Close(fd)
	api := uffd.APIArgs{API: uffd.API}
	if err := ioctlPtr(fd, uffd.ReqAPI, unsafe.Pointer(&api)); err != nil {
		return 0, fmt.Errorf("UFFDIO_API probe: %w: %w", err, ErrUnavailable)
	}
	return api.Features, nil
}

// takeUserfaultfd freezes pid, creates a userfaultfd inside it, copies it to
// us and closes it in the task, then thaws the task.
//
// Flags: O_CLOEXEC|O_NONBLOCK, and UFFD_USER_MODE_ONLY first. That flag
// makes userfaultfd(2) allowed for any task even with
// vm.unprivileged_userfaultfd=0 (the call runs with the task's credentials,
// not ours), and it only limits which faults go to a reader
// (handle_userfault); asynchronous write-protect faults are resolved by the
// kernel before that point, for kernel-mode writes too. Without it the
// call needs CAP_SYS_PTRACE in the task (or the sysctl), so it is the
// fallback for kernels before 5.11 that reject the flag with EINVAL.
func takeUserfaultfd(pid int) (fd int, err error) {
	f, err := checkpoint.Freeze(pid)
	if err != nil {
		return -1, fmt.Errorf("freeze %d to create its userfaultfd: %w", pid, err)
	}
	defer func() {
		if e := f.Thaw(); e != nil && err == nil {
			unix.Close(fd)
			fd, err = -1, fmt.Errorf("thaw %d after creating its userfaultfd: %w", pid, e)
		}
	}()
	in, err := f.Inject()
	if err != nil {
		return -1, err
	}
	defer func() {
		if e := in.End(); e != nil && err == nil {
			unix.Close(fd)
			fd, err = -1, fmt.Errorf("end injection into %d: %w", pid, e)
		}
	}()
	sc := f.Arch.Syscalls()
	fd, err = uffd.CreateIn(pid, in.Call, sc.Userfaultfd, sc.Close)
	if errors.Is(err, uffd.ErrCloseInTask) {
		return -1, err
	}
	if err != nil {
		// The call failed in the task (its errno) or the injection did:
		// either way this method is out for this task.
		return -1, fmt.Errorf("%w: %w", err, ErrUnavailable)
	}
	return fd, nil
}

// ErrSeccomp: the task runs under a seccomp filter, which applies to
// injected system calls too: userfaultfd(2) may be refused, or (with a
// kill action, systemd's default) end the task.
var ErrSeccomp = errors.New("task runs under seccomp")

func noSeccomp(pid int) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return fmt.Errorf("read status of %d: %w", pid, err)
	}
	st, err := procfs.ParseStatus(b)
	if err != nil {
		return fmt.Errorf("status of %d: %w", pid, err)
	}
	if st.Seccomp != 0 {
		return fmt.Errorf("task %d (seccomp mode %d): %w: %w", pid, st.Seccomp, ErrSeccomp, ErrUnavailable)
	}
	return nil
}

func (t *uffdTracker) Kind() Kind { return KindUFFD }

// Sent does nothing: the kernel keeps the state.
func (t *uffdTracker) Sent(*image.VMA, []uint32, []byte) {}

// Sync finds the trackable ranges not registered with our userfaultfd (new
// mappings, mappings the task replaced or moved: the kernel drops the
// registration then), collects and re-protects the written pages of the
// registered ones, and then registers and protects the others, which are
// returned Fresh.
func (t *uffdTracker) Sync(vmas []*image.VMA, frozen bool) (*Delta, error) {
	d := &Delta{}
	var fresh []Range
	for _, v := range vmas {
		if !trackable(v) {
			continue
		}
		vr := Range{v.Start, v.End}
		if hugeReservation(v) {
			// Not registered: sent whole (its present pages, usually
			// none) every round instead.
			fresh = append(fresh, vr)
			continue
		}
		var unreg []Range
		if t.armed {
			// Pages of VMAs without PAGE_IS_WPALLOWED: not registered.
			err := t.scan(vr, 0, uffd.PageIsWPAllowed, uffd.PageIsWPAllowed, uffd.PageIsWPAllowed, func(r uffd.PageRegion) {
				unreg = append(unreg, Range{r.Start, r.End})
			})
			if err != nil {
				return nil, fmt.Errorf("uffd-wp: find unregistered parts of %s: %w", vr, err)
			}
		} else {
			unreg = []Range{vr}
		}
		unregR := normalize(unreg)
		fresh = append(fresh, unregR...)
		for _, r := range (Ranges{vr}).Subtract(unregR) {
			var written []Range
			err := t.scan(r, uffd.ScanWPMatching|uffd.ScanCheckWPAsync, 0, uffd.PageIsWritten, uffd.PageIsWritten, func(pr uffd.PageRegion) {
				written = append(written, Range{pr.Start, pr.End})
			})
			if errors.Is(err, unix.EPERM) {
				// The task replaced part of the range since the first scan:
				// written state was lost for what the walk passed, so the
				// whole range is sent again.
				fresh = append(fresh, r)
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("uffd-wp: collect written pages of %s: %w", r, err)
			}
			d.Dirty = append(d.Dirty, written...)
		}
	}
	d.Dirty = normalize(d.Dirty)
	fr := normalize(fresh).Subtract(t.untrackable)
	// Register VMA by VMA, so that one the kernel refuses (a VM_PFNMAP
	// device mapping, say) leaves its neighbours tracked.
	for _, v := range vmas {
		if !trackable(v) {
			continue
		}
		if hugeReservation(v) {
			continue
		}
		for _, r := range fr.Intersect(v.Start, v.End) {
			if err := t.protect(r); err != nil {
				if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) {
					t.untrackable = t.untrackable.Union(Ranges{r})
					continue
				}
				return nil, fmt.Errorf("uffd-wp: arm %s: %w", r, err)
			}
		}
	}
	t.armed = true
	d.Fresh = fr.Union(t.untrackable.intersectAll(trackableRanges(vmas)))
	d.Dirty = d.Dirty.Subtract(d.Fresh)
	return d, nil
}

// hugeReservationBytes: PROT_NONE mappings larger than this are not
// registered. Write-protecting with WP_UNPOPULATED puts a marker in every
// page table entry, so it allocates page tables for the whole range (the
// heap reservations of JVMs and Go programs run to gigabytes, all holes).
// A PROT_NONE mapping cannot be written without changing its protection,
// but it may be made writable, written and made PROT_NONE again between two
// Syncs; so instead of being tracked it is reported Fresh every time.
const hugeReservationBytes = 64 << 20

func hugeReservation(v *image.VMA) bool {
	return v.Prot == 0 && v.End-v.Start > hugeReservationBytes
}

// intersectAll returns the parts of rs inside any of o.
func (rs Ranges) intersectAll(o Ranges) Ranges {
	var out []Range
	for _, r := range o {
		out = append(out, rs.Intersect(r.Start, r.End)...)
	}
	return normalize(out)
}

// protect registers r for write-protect tracking and protects it (holes
// too: WP_UNPOPULATED puts markers where no page is yet).
func (t *uffdTracker) protect(r Range) error {
	reg := uffd.RegisterArgs{Range: uffd.Range{Start: r.Start, Len: r.Len()}, Mode: uffd.RegisterModeWP}
	if err := ioctlPtr(t.uffd, uffd.ReqRegister, unsafe.Pointer(&reg)); err != nil {
		return fmt.Errorf("UFFDIO_REGISTER %s: %w", r, err)
	}
	wp := uffd.WriteprotectArgs{Range: uffd.Range{Start: r.Start, Len: r.Len()}, Mode: uffd.WriteprotectModeWP}
	if err := ioctlPtr(t.uffd, uffd.ReqWriteprotect, unsafe.Pointer(&wp)); err != nil {
		return fmt.Errorf("UFFDIO_WRITEPROTECT %s: %w", r, err)
	}
	return nil
}

// scan runs PAGEMAP_SCAN over r and calls fn for each region returned.
func (t *uffdTracker) scan(r Range, flags, inverted, mask, ret uint64, fn func(uffd.PageRegion)) error {
	arg := uffd.ScanArgs{
		Size:             uint64(unsafe.Sizeof(uffd.ScanArgs{})),
		Flags:            flags,
		End:              r.End,
		Vec:              uint64(uintptr(unsafe.Pointer(&t.vec[0]))),
		VecLen:           uint64(len(t.vec)),
		CategoryInverted: inverted,
		CategoryMask:     mask,
		ReturnMask:       ret,
	}
	for start := r.Start; start < r.End; {
		arg.Start = start
		arg.WalkEnd = 0
		n, err := uffd.Ioctl(int(t.pagemap.Fd()), uffd.ReqPagemapScan, unsafe.Pointer(&arg))
		t.Scans++
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("PAGEMAP_SCAN %#x-%#x of %d: %w", start, r.End, t.pid, err)
		}
		for _, reg := range t.vec[:n] {
			fn(reg)
		}
		if arg.WalkEnd <= start {
			return fmt.Errorf("PAGEMAP_SCAN %#x-%#x of %d: no progress", start, r.End, t.pid)
		}
		start = arg.WalkEnd
	}
	return nil
}

// Close unprotects and unregisters every VMA of the task that is
// registered with our userfaultfd, and closes it: the task is left as it
// was before the first Sync.
func (t *uffdTracker) Close() error {
	if t.uffd < 0 {
		return nil
	}
	var first error
	if vmas, err := checkpoint.VMAs(t.pid); err == nil {
		for _, v := range vmas {
			if v.Special() {
				continue
			}
			rg := uffd.Range{Start: v.Start, Len: v.End - v.Start}
			wp := uffd.WriteprotectArgs{Range: rg}
			// ENOENT/EINVAL: not registered (by us) or not registrable.
			if err := ioctlPtr(t.uffd, uffd.ReqWriteprotect, unsafe.Pointer(&wp)); err != nil &&
				err != unix.ENOENT && err != unix.EINVAL && err != unix.ESRCH && first == nil {
				first = fmt.Errorf("uffd-wp: unprotect %#x-%#x: %w", v.Start, v.End, err)
			}
			if err := ioctlPtr(t.uffd, uffd.ReqUnregister, unsafe.Pointer(&rg)); err != nil &&
				err != unix.EINVAL && err != unix.ESRCH && first == nil {
				first = fmt.Errorf("uffd-wp: unregister %#x-%#x: %w", v.Start, v.End, err)
			}
		}
	}
	// Closing the fd drops whatever registration is left (userfaultfd_release).
	if err := unix.Close(t.uffd); err != nil && first == nil {
		first = fmt.Errorf("uffd-wp: close: %w", err)
	}
	t.uffd = -1
	t.pagemap.Close()
	return first
}

func ioctlPtr(fd int, req uintptr, arg unsafe.Pointer) error {
	_, err := uffd.Ioctl(fd, req, arg)
	return err
}
