package restore

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"syscall"

	"github.com/migrated/migrated/arch"
	_ "github.com/migrated/migrated/arch/powerpc" // task arches this engine knows
	_ "github.com/migrated/migrated/arch/x86"
	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/inject"
	"github.com/migrated/migrated/internal/procfs"
	"golang.org/x/sys/unix"
)

// Errors a caller acts on.
var (
	// ErrPIDTaken: the task's PID (or a TID) is in use on this host.
	ErrPIDTaken = errors.New("the task's PID is already in use here")
	// ErrVDSOMismatch: this host's vDSO differs from the task's.
	ErrVDSOMismatch = errors.New("this host's vDSO differs from the task's")
	// ErrFileChanged: a file the task maps or holds open is not the same file here.
	ErrFileChanged = errors.New("a file of the task differs here")
	// ErrBadImage: the image contradicts itself.
	ErrBadImage = errors.New("inconsistent image")
	// ErrStubInTheWay: a mapping that appeared during pre-copy lies where the
	// stub was placed; the move must start again.
	ErrStubInTheWay = errors.New("a new mapping of the task lies on the restore stub")
)

// Options of a restore.
type Options struct {
	// AllowNewPID lets a single-threaded task get a new PID when its own is
	// taken. Off by default: glibc caches its TIDs.
	AllowNewPID bool
	// ForceTimeNS restores into a new time namespace even when this host's
	// clocks are ahead of the task's (tests; see timeOffsets).
	ForceTimeNS bool
	// NoTimerRestoreIDs recreates POSIX timers as on a kernel without
	// PR_TIMER_CREATE_RESTORE_IDS (before 6.17: the POWER guests'), with
	// placeholder timers to reach each ID (tests; see setPosixTimers).
	NoTimerRestoreIDs bool
	Log               *slog.Logger
}

// Process is a task being built. It stays stopped until Resume.
type Process struct {
	Task     *image.Task
	Arch     arch.Arch
	PID      int
	PageSize uint64

	opts    Options
	tracer  *inject.Tracer
	leader  *inject.Thread
	in      *inject.Injector
	scratch uint64 // a page for arguments of injected calls
	stub    uint64 // the stub's code page
	done    bool
	mapped  map[uint64]*image.VMA // by start
	shmFds  map[uint32]uint64     // shmid -> fd in the new process, while mapping
	threads []*threadBuild        // set by Finish
	shmSize map[uint32]uint64
	deleted map[uint64]string // recreated deleted files, by inode
	log     *slog.Logger
	// timeMono and timeBoot are the offsets of the time namespace the
	// process was made in (0 without one).
	timeMono, timeBoot int64
}

// TimeOffsets are the CLOCK_MONOTONIC and CLOCK_BOOTTIME offsets of the time
// namespace the process runs in (0, 0 when it got none).
func (p *Process) TimeOffsets() (mono, boot int64) { return p.timeMono, p.timeBoot }

// Start creates the new process for t: a stub with the task's PID (or a new
// one when allowed), its own stack and vDSO put where the task had them,
// nothing else mapped but the stub page and a scratch page. Call MapVMAs
// next.
func Start(t *image.Task, opts Options) (*Process, error) {
	if t.Header == nil || len(t.Threads) == 0 {
		return nil, fmt.Errorf("%w: no header or no threads", ErrBadImage)
	}
	a, err := arch.Lookup(arch.Kind(t.Header.Arch))
	if err != nil {
		return nil, err
	}
	pageSize := uint64(os.Getpagesize())
	if t.Header.PageSize != pageSize {
		return nil, fmt.Errorf("image page size %d, this host's is %d", t.Header.PageSize, pageSize)
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(discard{}, nil))
	}
	p := &Process{Task: t, Arch: a, PageSize: pageSize, opts: opts, tracer: inject.NewTracer(),
		mapped: map[uint64]*image.VMA{}, shmFds: map[uint32]uint64{}, shmSize: map[uint32]uint64{}, log: log}
	if err := p.start(); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// stubHole picks two free pages (stub code, scratch) below the task's
// first mapping or in the first gap that fits, away from every VMA.
func stubHole(vmas []*image.VMA, pageSize uint64, limit uint64) (uint64, error) {
	sorted := append([]*image.VMA(nil), vmas...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Start < sorted[j].Start })
	need := 2 * pageSize
	guard := 16 * pageSize // keep clear of stack guard gaps and growth
	cand := uint64(1 << 20)
	for _, v := range sorted {
		if cand+need+guard <= v.Start {
			return cand, nil
		}
		if v.End+guard > cand {
			cand = (v.End + guard + pageSize - 1) &^ (pageSize - 1)
		}
	}
	if cand+need <= limit {
		return cand, nil
	}
	return 0, fmt.Errorf("no room for the stub in the task's address space")
}

func (p *Process) start() error {
	a, t := p.Arch, p.Task
	limit := uint64(1) << 47
	if a.WordSize() == 4 {
		limit = 1 << 32
	}
	base, err := stubHole(t.Vmas, p.PageSize, limit)
	if err != nil {
		return err
	}
	elf, err := a.StubELF(base, p.PageSize)
	if err != nil {
		return err
	}
	hdr := uint64(64 + 56)
	if a.WordSize() == 4 {
		hdr = 52 + 32
	}
	p.stub = base
	gadget := base + hdr + 1 // code is: trap, gadget, trap
	if a.Kind() == arch.KindPPC64LE || a.Kind() == arch.KindPPC64 || a.Kind() == arch.KindPPC32 {
		gadget = base + hdr + 4 // fixed-width instructions
	}

	memfd, err := unix.MemfdCreate("migrated-stub", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("stub memfd: %w", err)
	}
	stubFile := os.NewFile(uintptr(memfd), "migrated-stub")
	defer stubFile.Close()
	if _, err := stubFile.Write(elf); err != nil {
		return fmt.Errorf("write stub: %w", err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()

	var stubPID int
	var want int
	if err := p.tracer.Do(func() error {
		cmd := &exec.Cmd{
			Path:   fmt.Sprintf("/proc/self/fd/%d", memfd),
			Args:   []string{t.Comm},
			Env:    []string{},
			Stdin:  devnull,
			Stdout: devnull,
			Stderr: devnull,
			SysProcAttr: &syscall.SysProcAttr{
				Ptrace:    true,
				Setsid:    true,
				Pdeathsig: syscall.SIGKILL,
			},
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start stub: %w", err)
		}
		stubPID = cmd.Process.Pid
		_ = cmd.Process.Release()
		return nil
	}); err != nil {
		return err
	}
	stub := p.tracer.Thread(stubPID, a)
	ws, err := stub.WaitStop()
	if err != nil {
		return err
	}
	if !ws.Stopped() || ws.StopSignal() != unix.SIGTRAP {
		return fmt.Errorf("stub %d: unexpected first stop (status %#x)", stubPID, uint32(ws))
	}
	opts := inject.PtraceOptions | unix.PTRACE_O_EXITKILL | unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACECLONE
	if err := stub.SetOptions(opts); err != nil {
		return err
	}
	in, err := inject.Begin(stub, gadget)
	if err != nil {
		return err
	}
	sc := a.Syscalls()
	// Scratch page right above the stub page.
	scratch, err := in.Call("mmap", sc.Mmap, base+p.PageSize, p.PageSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0)
	if err != nil {
		return err
	}
	p.scratch = scratch
	// The task's personality, before anything of it is mapped (the copy
	// made below inherits it). The stub's own is what the kernel chose for
	// its ELF: a 32-bit stub gets READ_IMPLIES_EXEC, which would add
	// PROT_EXEC to every readable mapping of the restored task.
	if _, err := in.Call("personality", sc.Personality, uint64(t.Personality)); err != nil {
		return err
	}

	want = int(t.Header.Pid)
	target := stubPID
	mono, boot, needNS := timeOffsets(t.Clocks, p.opts.ForceTimeNS)
	if needNS {
		// The copy made below enters a new time namespace whose offsets
		// carry the task's clocks on from where they were.
		if want == stubPID {
			return fmt.Errorf("the stub took the task's pid %d itself; cannot also give it a time namespace", want)
		}
		if err := p.newTimeNS(in, stubPID, mono, boot); err != nil {
			return err
		}
	}
	if want != stubPID {
		child, err := p.cloneWithPID(in, stubPID, want)
		if err != nil {
			if errors.Is(err, ErrPIDTaken) && p.opts.AllowNewPID && len(t.Threads) == 1 {
				p.log.Warn("PID taken, using a new one", "pid", want)
				child, err = p.cloneWithPID(in, stubPID, 0)
			}
			if err != nil {
				_ = unix.Kill(stubPID, unix.SIGKILL)
				_, _ = stub.WaitStop()
				return err
			}
		}
		// The stub has done its job: its copy carries on.
		_ = unix.Kill(stubPID, unix.SIGKILL)
		_ = p.tracer.Do(func() error {
			var ws unix.WaitStatus
			for {
				if _, err := unix.Wait4(stubPID, &ws, unix.WALL, nil); err != unix.EINTR {
					return nil
				}
			}
		})
		target = child
	} else {
		if err := in.End(); err != nil {
			return err
		}
	}
	p.PID = target
	p.leader = p.tracer.Thread(target, a)
	if p.in, err = inject.Begin(p.leader, gadget); err != nil {
		return err
	}
	if err := p.dropStubMappings(); err != nil {
		return err
	}
	return p.placeVDSO()
}

// cloneWithPID injects clone3(CLONE_PARENT, set_tid = [pid]) into the stub:
// the copy is our child, traced from its first instruction. pid 0 takes any.
func (p *Process) cloneWithPID(in *inject.Injector, stubPID, pid int) (int, error) {
	a := p.Arch
	o := a.ByteOrder()
	// struct clone_args (include/uapi/linux/sched.h): eleven __aligned_u64.
	args := make([]byte, 11*8+8)
	const cloneParent = 0x00008000
	o.PutUint64(args[0:], cloneParent)
	// exit_signal stays 0: with CLONE_PARENT the child inherits the
	// stub's own exit signal (SIGCHLD), and clone3 refuses any other.
	setTid := p.scratch + 11*8
	if pid != 0 {
		o.PutUint64(args[64:], setTid)      // set_tid
		o.PutUint64(args[72:], 1)           // set_tid_size
		o.PutUint32(args[88:], uint32(pid)) // set_tid[0], a pid_t
	}
	if err := inject.WriteMem(stubPID, p.scratch, args); err != nil {
		return 0, err
	}
	child, err := in.Call("clone3", a.Syscalls().Clone3, p.scratch, 11*8)
	if err != nil {
		var se *inject.SyscallError
		if errors.As(err, &se) && se.Errno == unix.EEXIST {
			return 0, fmt.Errorf("pid %d: %w", pid, ErrPIDTaken)
		}
		return 0, fmt.Errorf("create the process with pid %d: %w", pid, err)
	}
	th := p.tracer.Thread(int(child), a)
	ws, err := th.WaitStop()
	if err != nil {
		return 0, err
	}
	if !ws.Stopped() {
		return 0, fmt.Errorf("new process %d: unexpected status %#x", child, uint32(ws))
	}
	return int(child), nil
}

// dropStubMappings unmaps the stub's stack (the task brings its own).
func (p *Process) dropStubMappings() error {
	maps, err := p.currentMaps()
	if err != nil {
		return err
	}
	for _, m := range maps {
		if m.Path == "[stack]" {
			if _, err := p.call("munmap", p.sc().Munmap, m.Start, m.End-m.Start); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *Process) currentMaps() ([]procfs.MapEntry, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", p.PID))
	if err != nil {
		return nil, err
	}
	return procfs.ParseMaps(b, false)
}

func (p *Process) sc() *arch.Syscalls { return p.Arch.Syscalls() }

func (p *Process) call(name string, nr int, args ...uint64) (uint64, error) {
	return p.in.Call(name, nr, args...)
}

// freeAreaAvoiding reserves size bytes (PROT_NONE) anywhere but in
// [avoidLo, avoidHi): the kernel's first choice is often right below the
// vDSO, which in a 32-bit address space can be where the task's vDSO must
// go, and a move from there to an overlapping place fails (EINVAL). Areas
// it had to refuse are kept until a good one is found, then released.
func (p *Process) freeAreaAvoiding(size, avoidLo, avoidHi uint64) (uint64, error) {
	sc := p.sc()
	var refused []uint64
	defer func() {
		for _, r := range refused {
			_, _ = p.call("munmap", sc.Munmap, r, size)
		}
	}()
	for range 8 {
		a, err := p.call("mmap", sc.Mmap, 0, size, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
		if err != nil {
			return 0, err
		}
		if a+size <= avoidLo || a >= avoidHi {
			return a, nil
		}
		refused = append(refused, a)
	}
	return 0, fmt.Errorf("no free area of %d bytes away from %#x-%#x", size, avoidLo, avoidHi)
}

// placeVDSO moves this host's [vvar], [vvar_vclock] and [vdso] together to
// where the task had them, after checking that the vDSO is the task's.
func (p *Process) placeVDSO() error {
	maps, err := p.currentMaps()
	if err != nil {
		return err
	}
	var cur []procfs.MapEntry
	var vdso *procfs.MapEntry
	for i, m := range maps {
		switch m.Path {
		case "[vdso]":
			vdso = &maps[i]
			cur = append(cur, m)
		case "[vvar]", "[vvar_vclock]":
			cur = append(cur, m)
		}
	}
	want := p.Task.Header.Vdso
	if want == nil {
		for _, m := range cur {
			if _, err := p.call("munmap", p.sc().Munmap, m.Start, m.End-m.Start); err != nil {
				return err
			}
		}
		return nil
	}
	if vdso == nil {
		return fmt.Errorf("%w: this host gives the task no vDSO", ErrVDSOMismatch)
	}
	b := make([]byte, vdso.End-vdso.Start)
	if err := inject.ReadMem(p.PID, vdso.Start, b); err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	if !bytes.Equal(sum[:], want.Sha256) {
		return fmt.Errorf("%w (hash %x here, %x in the image)", ErrVDSOMismatch, sum[:6], want.Sha256[:min(6, len(want.Sha256))])
	}
	// The task's [vdso] start.
	var imgVdso uint64
	for _, v := range p.Task.Vmas {
		if v.Kind == image.VMAKind_VMA_VDSO {
			imgVdso = v.Start
		}
	}
	if imgVdso == 0 {
		return fmt.Errorf("%w: vDSO identity without a [vdso] mapping", ErrBadImage)
	}
	layout := map[string]*image.SpecialMapping{}
	for _, l := range want.Layout {
		layout[l.Name] = l
	}
	for _, m := range cur {
		l := layout[m.Path]
		if l == nil || int64(m.Start)-int64(vdso.Start) != l.Offset || m.End-m.Start != l.Size {
			return fmt.Errorf("%w: %s is laid out differently here", ErrVDSOMismatch, m.Path)
		}
	}
	if vdso.Start == imgVdso {
		return nil
	}
	delta := int64(imgVdso) - int64(vdso.Start)
	// Move through a free area first when old and new places overlap.
	lo, hi := cur[0].Start, cur[0].End
	for _, m := range cur {
		lo, hi = min(lo, m.Start), max(hi, m.End)
	}
	newLo, newHi := uint64(int64(lo)+delta), uint64(int64(hi)+delta)
	moves := []int64{delta}
	if newLo < hi && lo < newHi {
		tmp, err := p.freeAreaAvoiding(hi-lo, newLo, newHi)
		if err != nil {
			return err
		}
		moves = []int64{int64(tmp) - int64(lo), delta - (int64(tmp) - int64(lo))}
	}
	const mremapMaymove, mremapFixed = 1, 2
	for _, d := range moves {
		for i := range cur {
			m := &cur[i]
			size := m.End - m.Start
			to := uint64(int64(m.Start) + d)
			if _, err := p.call("mremap", p.sc().Mremap, m.Start, size, size, mremapMaymove|mremapFixed, to); err != nil {
				return fmt.Errorf("move %s to %#x: %w", m.Path, to, err)
			}
			m.Start, m.End = to, to+size
		}
	}
	return nil
}

// clone flag of a new time namespace (include/uapi/linux/sched.h).
const cloneNewTime = 0x00000080

// timeOffsets tells whether the task needs a time namespace, and its
// offsets: CLOCK_MONOTONIC and CLOCK_BOOTTIME of this host would put the
// task's clocks back (a destination that booted after the source) when
// they are behind the values the task read at its freeze. The offsets make
// the task's clocks resume exactly where they stopped.
func timeOffsets(c *image.Clocks, force bool) (mono, boot int64, need bool) {
	if c == nil {
		return 0, 0, false
	}
	var m, b unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &m) != nil || unix.ClockGettime(unix.CLOCK_BOOTTIME, &b) != nil {
		return 0, 0, false
	}
	mono, boot = c.MonotonicNs-m.Nano(), c.BoottimeNs-b.Nano()
	if mono <= 0 && boot <= 0 && !force {
		return 0, 0, false
	}
	return max(mono, 0), max(boot, 0), true
}

// newTimeNS makes the stub's children enter a new time namespace with the
// given offsets: unshare(CLONE_NEWTIME) inside the stub, then the offsets
// through /proc/STUB/timens_offsets, which the kernel accepts until a first
// task enters the namespace. The vDSO data page of a task in a time
// namespace is the namespace's own; the kernel maps it at the first touch.
func (p *Process) newTimeNS(in *inject.Injector, stubPID int, mono, boot int64) error {
	if _, err := in.Call("unshare(CLONE_NEWTIME)", p.sc().Unshare, cloneNewTime); err != nil {
		return fmt.Errorf("time namespace: %w", err)
	}
	s := fmt.Sprintf("monotonic %d %d\nboottime %d %d\n", mono/1e9, mono%1e9, boot/1e9, boot%1e9)
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/timens_offsets", stubPID), []byte(s), 0); err != nil {
		return fmt.Errorf("time namespace offsets: %w", err)
	}
	p.log.Info("restoring into a time namespace", "monotonic_offset_ns", mono, "boottime_offset_ns", boot)
	p.timeMono, p.timeBoot = mono, boot
	return nil
}
