package restore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/migrated/migrated/arch"
	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/inject"
	"github.com/migrated/migrated/internal/procfs"
	"golang.org/x/sys/unix"
)

// prctl options (include/uapi/linux/prctl.h).
const (
	prSetName        = 15
	prSetMM          = 35
	prSetMMMap       = 14
	prSetNoNewPrivs  = 38
	prCapbsetDrop    = 24
	linuxCapV3       = 0x20080522
	prctlMMMapSize   = 11*8 + 8 + 4 + 4
	rlimitNofile     = 7
	ssDisable        = 2
	maxFdCloseProbe  = 1024
	prctlMMMapAuxvOf = 11 * 8
)

// Finish applies everything but the pages, in the order the kernel needs:
// final protections, fds, cwd, umask, limits, signal handlers, timers, the
// per-thread state, mm fields (PR_SET_MM_MAP, once the stub page is gone),
// credentials last, then the registers. The process stays stopped.
func (p *Process) Finish() error {
	if err := p.finish(); err != nil {
		p.Kill()
		return err
	}
	return nil
}

func (p *Process) finish() error {
	t, a, sc := p.Task, p.Arch, p.sc()
	if err := p.protectFinal(); err != nil {
		return err
	}
	if err := p.restoreFds(); err != nil {
		return err
	}
	if t.Cwd != "" {
		path, err := p.writeScratch(cstr(t.Cwd))
		if err != nil {
			return err
		}
		if _, err := p.call("chdir "+t.Cwd, sc.Chdir, path); err != nil {
			return err
		}
	}
	if _, err := p.call("umask", sc.Umask, uint64(t.Umask)); err != nil {
		return err
	}
	have := p.currentLimits()
	for _, l := range t.Rlimits {
		if cur, ok := have[int(l.Resource)]; ok && cur == [2]uint64{l.Cur, l.Max} {
			continue // already so: the new process inherited it
		}
		b := make([]byte, 16) // struct rlimit64: two __u64, on every arch
		a.ByteOrder().PutUint64(b, l.Cur)
		a.ByteOrder().PutUint64(b[8:], l.Max)
		ptr, err := p.writeScratch(b)
		if err != nil {
			return err
		}
		if _, err := p.call("prlimit64", sc.Prlimit64, 0, uint64(l.Resource), ptr, 0); err != nil {
			return fmt.Errorf("limit %d (%d/%d): %w", l.Resource, l.Cur, l.Max, err)
		}
	}
	if err := p.setSigactions(t.Sigactions); err != nil {
		return err
	}
	for _, it := range t.Itimers {
		if err := p.setITimer(it); err != nil {
			return fmt.Errorf("itimer %d: %w", it.Which, err)
		}
	}
	if t.Personality != 0 {
		if _, err := p.call("personality", sc.Personality, uint64(t.Personality)); err != nil {
			return err
		}
	}
	// Threads: the leader is the process itself; every other thread is
	// made by clone3 with set_tid from inside the leader, so that it gets
	// its own TID back, and is then built like the leader.
	ths := []*threadBuild{{img: t.Threads[0], th: p.leader, in: p.in}}
	p.threads = ths
	for _, it := range t.Threads[1:] {
		tb, err := p.spawnThread(it)
		if err != nil {
			return fmt.Errorf("thread %d: %w", it.Tid, err)
		}
		ths = append(ths, tb)
		p.threads = ths // Kill must reap every thread made so far
	}
	if err := p.setPosixTimers(t.PosixTimers); err != nil {
		return err
	}
	if err := p.queueSignals(t.SharedPending, nil); err != nil {
		return err
	}
	for _, tb := range ths {
		if err := p.queueSignals(tb.img.Pending, tb); err != nil {
			return err
		}
		if err := p.threadState(tb); err != nil {
			return fmt.Errorf("thread %d: %w", tb.img.Tid, err)
		}
	}
	if err := p.dropStub(); err != nil {
		return err
	}
	if err := p.setMM(); err != nil {
		return err
	}
	// Credentials are per thread in the kernel: each thread sets its own.
	for _, tb := range ths {
		if err := p.restoreCreds(tb.in); err != nil {
			return fmt.Errorf("thread %d: credentials: %w", tb.img.Tid, err)
		}
	}
	if err := p.markVectorsUsed(ths); err != nil {
		return err
	}
	p.unlinkDeleted()
	// The scratch page goes last: nothing needs memory after it.
	if _, err := p.call("munmap", sc.Munmap, p.scratch, p.PageSize); err != nil {
		return err
	}
	for _, tb := range ths {
		if err := p.setRegisters(tb); err != nil {
			return fmt.Errorf("thread %d: %w", tb.img.Tid, err)
		}
		// From here, not from inside the thread: a nice below the
		// task's limit takes our CAP_SYS_NICE.
		if n := tb.img.Nice; n < -20 || n > 19 {
			return fmt.Errorf("%w: thread %d: nice %d", ErrBadImage, tb.img.Tid, n)
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tb.th.TID, int(tb.img.Nice)); err != nil {
			return fmt.Errorf("thread %d: nice %d: %w", tb.img.Tid, tb.img.Nice, err)
		}
	}
	return nil
}

// setSigactions gives the process the task's signal actions: all 64 in one
// injected run where the arch has the loop (arch.SigactionLooper; the
// others stay as a new process has them, SIG_DFL with nothing set), else
// one call for each action the task changed.
func (p *Process) setSigactions(acts []*image.SigAction) error {
	a, sc := p.Arch, p.sc()
	encode := func(s *image.SigAction) []byte {
		return arch.EncodeSigaction(a, arch.Sigaction{Handler: s.Handler, Flags: s.Flags, Restorer: s.Restorer, Mask: s.Mask})
	}
	one := func(s *image.SigAction) error {
		ptr, err := p.writeScratch(encode(s))
		if err != nil {
			return err
		}
		if _, err := p.call("rt_sigaction", sc.RtSigaction, uint64(s.Signo), ptr, 0, 8); err != nil {
			return fmt.Errorf("handler of signal %d: %w", s.Signo, err)
		}
		return nil
	}
	l, ok := a.(arch.SigactionLooper)
	if !ok || p.PageSize < arch.SigLoopBytes || len(acts) == 0 {
		for _, s := range acts {
			if err := one(s); err != nil {
				return err
			}
		}
		return nil
	}
	buf := make([]byte, arch.SigLoopBytes)
	for _, s := range acts {
		if s.Signo < 1 || s.Signo > arch.SigLoopSignals {
			return fmt.Errorf("%w: action for signal %d", ErrBadImage, s.Signo)
		}
		copy(buf[(s.Signo-1)*arch.SigLoopSlot:], encode(s))
	}
	if err := inject.WriteMem(p.PID, p.scratch, buf); err != nil {
		return err
	}
	code, trapPC := l.SigactionLoop(true)
	ran, err := p.in.RunCode(p.PageSize, code, trapPC, func(r arch.Regs, at uint64) { l.SetSigactionLoop(r, at, p.scratch) })
	if err != nil {
		return fmt.Errorf("set the signal actions: %w", err)
	}
	if !ran {
		for _, s := range acts {
			if err := one(s); err != nil {
				return err
			}
		}
		return nil
	}
	if err := inject.ReadMem(p.PID, p.scratch, buf); err != nil {
		return err
	}
	for sig := 1; sig <= arch.SigLoopSignals; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue // EINVAL: their actions cannot be set
		}
		if e := l.SigLoopErrno(buf[(sig-1)*arch.SigLoopSlot : sig*arch.SigLoopSlot]); e != 0 {
			return fmt.Errorf("handler of signal %d: %w", sig, unix.Errno(e))
		}
	}
	// The loop's trap reset an ignored SIGTRAP to SIG_DFL (see
	// inject.RunToTrap): set it again.
	for _, s := range acts {
		if s.Signo == int32(unix.SIGTRAP) && s.Handler == 1 { // SIG_IGN
			return one(s)
		}
	}
	return nil
}

// threadBuild is one thread of the new process while it is built.
type threadBuild struct {
	img *image.Thread
	th  *inject.Thread
	in  *inject.Injector
}

// Linux clone flags of a thread (include/uapi/linux/sched.h).
const (
	cloneVM      = 0x00000100
	cloneFS      = 0x00000200
	cloneFiles   = 0x00000400
	cloneSighand = 0x00000800
	cloneThread  = 0x00010000
	cloneSysvsem = 0x00040000
)

// spawnThread injects clone3(thread flags, set_tid = [tid]) into the leader.
// The new thread is traced from its first instruction (PTRACE_O_TRACECLONE)
// and never runs task code before Resume.
func (p *Process) spawnThread(it *image.Thread) (*threadBuild, error) {
	o := p.Arch.ByteOrder()
	args := make([]byte, 11*8+8)
	o.PutUint64(args[0:], cloneVM|cloneFS|cloneFiles|cloneSighand|cloneThread|cloneSysvsem)
	o.PutUint64(args[64:], p.scratch+11*8) // set_tid
	o.PutUint64(args[72:], 1)
	o.PutUint32(args[88:], uint32(it.Tid)) // set_tid[0], a pid_t
	if _, err := p.writeScratch(args); err != nil {
		return nil, err
	}
	tid, err := p.call("clone3", p.sc().Clone3, p.scratch, 11*8)
	if err != nil {
		var se *inject.SyscallError
		if errors.As(err, &se) && se.Errno == unix.EEXIST {
			return nil, fmt.Errorf("tid %d: %w", it.Tid, ErrPIDTaken)
		}
		return nil, err
	}
	th := p.tracer.Thread(int(tid), p.Arch)
	ws, err := th.WaitStop()
	if err != nil {
		return nil, err
	}
	if !ws.Stopped() {
		return nil, fmt.Errorf("new thread %d: status %#x", tid, uint32(ws))
	}
	in, err := inject.Begin(th, p.in.Gadget())
	if err != nil {
		return nil, err
	}
	return &threadBuild{img: it, th: th, in: in}, nil
}

// restoreFds closes what the stub had and opens the task's fds at their
// numbers, offsets and flags.
func (p *Process) restoreFds() error {
	sc := p.sc()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.PID))
	if err != nil {
		return err
	}
	keep := map[uint64]bool{}
	for _, fd := range p.shmFds {
		keep[fd] = true
	}
	for _, e := range ents {
		var n uint64
		if _, err := fmt.Sscan(e.Name(), &n); err != nil || keep[n] {
			continue
		}
		if _, err := p.call("close", sc.Close, n); err != nil {
			return err
		}
	}
	// Files, directories, devices and eventfds first; epolls last, once
	// every fd they watch exists.
	for _, pass := range []bool{false, true} {
		for _, f := range p.Task.Fds {
			if !image.SupportedFdKinds[f.Kind] {
				return fmt.Errorf("%w: fd %d is a %s", ErrBadImage, f.Fd, image.FdKindName(f.Kind))
			}
			if (f.Kind == image.FdKind_FD_EPOLL) != pass {
				continue
			}
			if err := p.restoreFd(f); err != nil {
				return fmt.Errorf("fd %d (%s): %w", f.Fd, image.FdKindName(f.Kind), err)
			}
		}
	}
	return nil
}

// epoll_ctl and eventfd constants (include/uapi/linux/eventpoll.h, eventfd.h).
const (
	epollCtlAdd  = 1
	efdSemaphore = 1
)

func (p *Process) restoreFd(f *image.Fd) error {
	sc := p.sc()
	var got uint64
	var err error
	switch f.Kind {
	case image.FdKind_FD_EVENTFD:
		flags := uint64(f.Flags & unix.O_NONBLOCK)
		if f.EventfdSemaphore {
			flags |= efdSemaphore
		}
		got, err = p.call("eventfd2", sc.Eventfd2, f.EventfdCount, flags)
	case image.FdKind_FD_EPOLL:
		got, err = p.call("epoll_create1", sc.EpollCreate1, 0)
	case image.FdKind_FD_DELETED_REGULAR:
		got, err = p.openDeleted(f)
	default:
		if f.Kind == image.FdKind_FD_REGULAR {
			if err := checkOpenFile(f); err != nil {
				return err
			}
		}
		path, werr := p.writeScratch(cstr(f.Path))
		if werr != nil {
			return werr
		}
		flags := uint64(f.Flags) &^ (unix.O_CREAT | unix.O_TRUNC | unix.O_EXCL | unix.O_NOCTTY)
		got, err = p.call("openat "+f.Path, sc.Openat, atFdcwd, path, flags, 0)
	}
	if err != nil {
		return err
	}
	if int32(got) != f.Fd {
		var cl uint64
		if f.Cloexec {
			cl = unix.O_CLOEXEC
		}
		if _, err := p.call("dup3", sc.Dup3, got, uint64(f.Fd), cl); err != nil {
			return err
		}
		if _, err := p.call("close", sc.Close, got); err != nil {
			return err
		}
	} else if f.Cloexec {
		if _, err := p.call("fcntl", sc.Fcntl, got, unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			return err
		}
	}
	switch f.Kind {
	case image.FdKind_FD_REGULAR, image.FdKind_FD_DELETED_REGULAR:
		if f.Offset != 0 {
			if _, err := p.call("lseek", sc.Lseek, uint64(f.Fd), uint64(f.Offset), 0); err != nil {
				return err
			}
		}
	case image.FdKind_FD_EPOLL:
		for _, e := range f.Epoll {
			ptr, err := p.writeScratch(arch.EncodeEpollEvent(p.Arch, e.Events, e.Data))
			if err != nil {
				return err
			}
			if _, err := p.call("epoll_ctl", sc.EpollCtl, uint64(f.Fd), epollCtlAdd, uint64(e.Fd), ptr); err != nil {
				return fmt.Errorf("watch fd %d: %w", e.Fd, err)
			}
		}
	}
	return nil
}

// checkOpenFile: an open regular file must still be the task's file, and
// still reach the task's offset.
func checkOpenFile(f *image.Fd) error {
	var st unix.Stat_t
	if err := unix.Stat(f.Path, &st); err != nil {
		return fmt.Errorf("%w: fd %d: %s: %v", ErrFileChanged, f.Fd, f.Path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%w: fd %d: %s is no longer a regular file", ErrFileChanged, f.Fd, f.Path)
	}
	if f.File != nil && (st.Size != f.File.Size || st.Mtim.Nano() != f.File.MtimeNs) {
		return fmt.Errorf("%w: fd %d: %s changed since the checkpoint (size %d, was %d)", ErrFileChanged, f.Fd, f.Path, st.Size, f.File.Size)
	}
	return nil
}

// threadState applies one thread's signal stack, tid address, robust list,
// rseq and name from inside that thread.
func (p *Process) threadState(tb *threadBuild) error {
	a, sc, th, in := p.Arch, p.sc(), tb.img, tb.in
	if s := th.Altstack; s != nil {
		ptr, err := p.writeScratch(arch.EncodeStack(a, s.Sp, s.Flags&^ssDisable, s.Size))
		if err != nil {
			return err
		}
		if _, err := in.Call("sigaltstack", sc.Sigaltstack, ptr, 0); err != nil {
			return err
		}
	}
	if _, err := in.Call("set_tid_address", sc.SetTidAddress, th.ClearChildTid); err != nil {
		return err
	}
	if r := th.RobustList; r != nil {
		if _, err := in.Call("set_robust_list", sc.SetRobustList, r.Head, r.Len); err != nil {
			return err
		}
	}
	if r := th.Rseq; r != nil {
		if _, err := in.Call("rseq", sc.Rseq, r.Addr, uint64(r.Len), 0, uint64(r.Sig)); err != nil {
			return err
		}
	}
	if th.Comm != "" {
		name := th.Comm
		if len(name) > 15 {
			name = name[:15]
		}
		ptr, err := p.writeScratch(cstr(name))
		if err != nil {
			return err
		}
		if _, err := in.Call("prctl(PR_SET_NAME)", sc.Prctl, prSetName, ptr); err != nil {
			return err
		}
	}
	in.SetSavedMask(th.Sigmask)
	return nil
}

// dropStub unmaps the stub's code page. Calls from here on run from the
// syscall instruction in the task's own [vdso].
func (p *Process) dropStub() error {
	g, err := p.vdsoGadget()
	if err != nil {
		return err
	}
	for _, tb := range p.threads {
		tb.in.SetGadget(g)
	}
	if _, err := p.call("munmap", p.sc().Munmap, p.stub, p.PageSize); err != nil {
		return err
	}
	p.stub = 0
	return nil
}

func (p *Process) vdsoGadget() (uint64, error) {
	for _, v := range p.Task.Vmas {
		if v.Kind != image.VMAKind_VMA_VDSO {
			continue
		}
		b := make([]byte, v.End-v.Start)
		if err := inject.ReadMem(p.PID, v.Start, b); err != nil {
			return 0, err
		}
		g := p.Arch.Gadget()
		step := 1
		if len(g) == 4 {
			step = 4
		}
		for off := 0; off+len(g) <= len(b); off += step {
			if string(b[off:off+len(g)]) == string(g) {
				return v.Start + uint64(off), nil
			}
		}
	}
	return 0, errors.New("the task has no [vdso] with a syscall instruction to finish the restore from")
}

// setMM restores the mm fields and the executable link with PR_SET_MM_MAP.
func (p *Process) setMM() error {
	m := p.Task.Mm
	if m == nil {
		return nil
	}
	a, sc := p.Arch, p.sc()
	o := a.ByteOrder()
	exeFd := ^uint64(0)
	if m.ExePath != "" {
		if err := checkFile(strings.TrimSuffix(m.ExePath, " (deleted)"), m.Exe); err == nil {
			path, err := p.writeScratch(cstr(m.ExePath))
			if err != nil {
				return err
			}
			if fd, err := p.call("openat exe", sc.Openat, atFdcwd, path, unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
				exeFd = fd
			}
		}
	}
	b := make([]byte, prctlMMMapSize+len(m.Auxv))
	for i, v := range []uint64{m.StartCode, m.EndCode, m.StartData, m.EndData, m.StartBrk, m.Brk,
		m.StartStack, m.ArgStart, m.ArgEnd, m.EnvStart, m.EnvEnd} {
		o.PutUint64(b[8*i:], v)
	}
	auxvAt := p.scratch + prctlMMMapSize
	o.PutUint64(b[prctlMMMapAuxvOf:], auxvAt)
	o.PutUint32(b[prctlMMMapAuxvOf+8:], uint32(len(m.Auxv)))
	o.PutUint32(b[prctlMMMapAuxvOf+12:], uint32(exeFd))
	copy(b[prctlMMMapSize:], m.Auxv)
	ptr, err := p.writeScratch(b)
	if err != nil {
		return err
	}
	_, err = p.call("prctl(PR_SET_MM_MAP)", sc.Prctl, prSetMM, prSetMMMap, ptr, prctlMMMapSize, 0)
	if exeFd != ^uint64(0) {
		_, _ = p.call("close", sc.Close, exeFd)
	}
	if err != nil {
		return fmt.Errorf("restore mm fields: %w", err)
	}
	return nil
}

// restoreCreds sets groups, gids, uids and capabilities. A task of root
// keeps its capability sets; for other uids the kernel clears them when the
// uids change, as it did for the original.
func (p *Process) restoreCreds(in *inject.Injector) error {
	c := p.Task.Creds
	if c == nil || len(c.Uids) != 4 || len(c.Gids) != 4 {
		return nil
	}
	a, sc := p.Arch, p.sc()
	o := a.ByteOrder()
	if c.NoNewPrivs {
		if _, err := in.Call("prctl(PR_SET_NO_NEW_PRIVS)", sc.Prctl, prSetNoNewPrivs, 1, 0, 0, 0); err != nil {
			return err
		}
	}
	cur := p.currentStatus(in)
	for capNr := uint64(0); capNr < 64; capNr++ {
		// Drop only what the new process has and the task had not.
		if cur.CapBnd&(1<<capNr) != 0 && c.CapBnd&(1<<capNr) == 0 {
			_, err := in.Call("prctl(PR_CAPBSET_DROP)", sc.Prctl, prCapbsetDrop, capNr)
			var se *inject.SyscallError
			if err != nil && !(errors.As(err, &se) && se.Errno == unix.EINVAL) {
				return err
			}
		}
	}
	if equalU32(cur.Uids, c.Uids) && equalU32(cur.Gids, c.Gids) && equalU32(cur.Groups, c.Groups) &&
		cur.CapEff == c.CapEff && cur.CapPrm == c.CapPrm && cur.CapInh == c.CapInh {
		return nil // the credentials are the task's already (a root task restored by root)
	}
	g := make([]byte, 4*len(c.Groups))
	for i, gid := range c.Groups {
		o.PutUint32(g[4*i:], gid)
	}
	ptr := uint64(0)
	if len(g) > 0 {
		var err error
		if ptr, err = p.writeScratch(g); err != nil {
			return err
		}
	}
	if _, err := in.Call("setgroups", sc.Setgroups, uint64(len(c.Groups)), ptr); err != nil {
		return err
	}
	if _, err := in.Call("setresgid", sc.Setresgid, uint64(c.Gids[0]), uint64(c.Gids[1]), uint64(c.Gids[2])); err != nil {
		return err
	}
	if _, err := in.Call("setresuid", sc.Setresuid, uint64(c.Uids[0]), uint64(c.Uids[1]), uint64(c.Uids[2])); err != nil {
		return err
	}
	if c.Uids[1] == 0 {
		// struct __user_cap_header_struct { u32 version; int pid; } and two
		// struct __user_cap_data_struct { u32 effective, permitted, inheritable; }.
		b := make([]byte, 8+24)
		o.PutUint32(b[0:], linuxCapV3)
		for i, sh := range []uint{0, 32} {
			d := b[8+12*i:]
			o.PutUint32(d[0:], uint32(c.CapEff>>sh))
			o.PutUint32(d[4:], uint32(c.CapPrm>>sh))
			o.PutUint32(d[8:], uint32(c.CapInh>>sh))
		}
		ptr, err := p.writeScratch(b)
		if err != nil {
			return err
		}
		if _, err := in.Call("capset", sc.Capset, ptr, ptr+8); err != nil {
			return err
		}
	}
	return nil
}

// setRegisters installs the task's register sets, with syscall restarts
// fixed up, as what the thread resumes with.
func (p *Process) setRegisters(tb *threadBuild) error {
	var gpr []byte
	for _, rs := range tb.img.Regsets {
		if rs.NoteType == arch.NT_PRSTATUS {
			gpr = rs.Data
		}
	}
	regs, err := p.Arch.DecodeRegs(append([]byte(nil), gpr...))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	if what := regs.FixRestart(); what != "" {
		p.log.Debug("syscall restart", "tid", tb.img.Tid, "what", what)
	}
	tb.in.SetSaved(regs)
	if err := tb.in.End(); err != nil {
		return err
	}
	for _, rs := range tb.img.Regsets {
		if rs.NoteType == arch.NT_PRSTATUS {
			continue
		}
		if rs.NoteType == arch.NT_386_TLS {
			if err := setThreadAreas(tb.th, rs.Data); err != nil {
				return err
			}
			continue
		}
		if err := tb.th.SetRegset(rs.NoteType, rs.Data); err != nil {
			return fmt.Errorf("register set %s: %w", rs.Name, err)
		}
	}
	return nil
}

// Resume lets the process run: the point of no return.
func (p *Process) Resume() error {
	if p.done {
		return errors.New("restore: process already resumed or killed")
	}
	// Every thread is ready; release them all.
	for _, tb := range p.threads {
		if err := tb.th.Detach(0); err != nil {
			p.Kill()
			return fmt.Errorf("resume thread %d: %w", tb.img.Tid, err)
		}
	}
	p.done = true
	p.tracer.Close()
	return nil
}

// queueSignals queues pending signals again, with their siginfo, from inside
// the task (a process may queue any siginfo to itself), laid out for the
// task's arch. A nil tb queues to the process, otherwise to that thread.
// Every signal is blocked while we inject, so they wait for the resume.
func (p *Process) queueSignals(sigs []*image.SigInfo, tb *threadBuild) error {
	sc := p.sc()
	for _, s := range sigs {
		if len(s.Raw) != arch.SiginfoSize || s.Signo <= 0 || s.Signo > 64 {
			return fmt.Errorf("%w: pending signal %d", ErrBadImage, s.Signo)
		}
		raw, err := arch.SiginfoForTask(p.Arch, s.Raw)
		if err != nil {
			return fmt.Errorf("%w: pending signal %d: %v", ErrBadImage, s.Signo, err)
		}
		ptr, err := p.writeScratch(raw)
		if err != nil {
			return err
		}
		if tb == nil {
			_, err = p.call("rt_sigqueueinfo", sc.RtSigqueueinfo, uint64(p.PID), uint64(s.Signo), ptr)
		} else {
			// The kernel lets only the thread itself queue a siginfo whose
			// si_code claims the kernel or kill/tgkill as its sender
			// (do_rt_tgsigqueueinfo): queue it from that thread.
			_, err = tb.in.Call("rt_tgsigqueueinfo", sc.RtTgsigqueueinfo, uint64(p.PID), uint64(tb.img.Tid), uint64(s.Signo), ptr)
		}
		if err != nil {
			return fmt.Errorf("queue signal %d: %w", s.Signo, err)
		}
	}
	return nil
}

// setITimer restores one interval timer. A periodic timer whose signal is
// pending and not yet dequeued reads as value 0 (the kernel rearms it at
// dequeue), which setitimer would take as "disarm": it fires at once
// instead, the pending signal being one signal either way. The kernel adds
// a tick to the value of a CPU-time timer (ITIMER_VIRTUAL, ITIMER_PROF;
// kernel/time/itimer.c set_cpu_itimer); the value is read back and the
// tick taken off again, so the timer keeps the time it had left.
func (p *Process) setITimer(it *image.ITimer) error {
	a, sc := p.Arch, p.sc()
	value := it.ValueNs
	if value == 0 && it.IntervalNs != 0 {
		value = 1000
	}
	set := func(v int64) error {
		ptr, err := p.writeScratch(arch.EncodeITimerval(a, it.IntervalNs, v))
		if err != nil {
			return err
		}
		_, err = p.call("setitimer", sc.Setitimer, uint64(it.Which), ptr, 0)
		return err
	}
	if err := set(value); err != nil {
		return err
	}
	if it.Which == 0 || value == 0 {
		return nil // ITIMER_REAL is exact
	}
	size := arch.ITimervalSize(a)
	if _, err := p.call("getitimer", sc.Getitimer, uint64(it.Which), p.scratch); err != nil {
		return err
	}
	b := make([]byte, size)
	if err := inject.ReadMem(p.PID, p.scratch, b); err != nil {
		return err
	}
	_, got, err := arch.DecodeITimerval(a, b)
	if err != nil {
		return err
	}
	if extra := got - value; extra > 0 {
		return set(max(value-extra, 1000))
	}
	return nil
}

// currentLimits reads the new process's limits, to set only what differs.
func (p *Process) currentLimits() map[int][2]uint64 {
	out := map[int][2]uint64{}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", p.PID))
	if err != nil {
		return out
	}
	ls, err := procfs.ParseLimits(b)
	if err != nil {
		return out
	}
	for _, l := range ls {
		out[l.Resource] = [2]uint64{l.Cur, l.Max}
	}
	return out
}

// currentStatus reads the credentials a thread of the new process has now.
func (p *Process) currentStatus(in *inject.Injector) *procfs.Status {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", p.PID, in.TID()))
	if err == nil {
		if st, err := procfs.ParseStatus(b); err == nil {
			return st
		}
	}
	return &procfs.Status{CapBnd: ^uint64(0)}
}

func equalU32(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// openDeleted recreates an open file that was unlinked: its contents travel
// in the image; the file is created beside where it was (under its own name
// when that is free), opened in the task, and unlinked again, so the task
// holds a deleted file with the same contents.
func (p *Process) openDeleted(f *image.Fd) (uint64, error) {
	path := f.Path
	tmp, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, os.FileMode(f.Mode&0o7777))
	if err != nil {
		tmp, err = os.CreateTemp(filepath.Dir(f.Path), "."+filepath.Base(f.Path)+".migrated-*")
		if err != nil {
			return 0, fmt.Errorf("recreate deleted file %s: %w", f.Path, err)
		}
		path = tmp.Name()
	}
	defer os.Remove(path)
	if _, err := tmp.Write(f.Contents); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("recreate deleted file %s: %w", f.Path, err)
	}
	if err := tmp.Close(); err != nil {
		return 0, err
	}
	ptr, err := p.writeScratch(cstr(path))
	if err != nil {
		return 0, err
	}
	flags := uint64(f.Flags) &^ (unix.O_CREAT | unix.O_TRUNC | unix.O_EXCL | unix.O_NOCTTY)
	return p.call("openat (deleted) "+f.Path, p.sc().Openat, atFdcwd, ptr, flags, 0)
}
