package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/migrated/migrated/arch"
	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/inject"
	"github.com/migrated/migrated/internal/procfs"
	"golang.org/x/sys/unix"
)

// MaxDeletedFile bounds the contents of an open, unlinked file that travel
// in an image (the file has no other name to be found by).
const MaxDeletedFile = 64 << 20

// Signals whose handlers are read (1..64 but SIGKILL and SIGSTOP).
const maxSignal = 64

// prctl options (include/uapi/linux/prctl.h).
const prGetTidAddress = 40

// Capture reads the whole state of the frozen task but its page contents.
// It injects a few system calls (into a scratch page it maps and unmaps
// again) where /proc is silent; the task's own registers and mask are put
// back after each thread's calls.
func (f *Frozen) Capture() (*image.Task, error) { return f.capture(true) }

// CaptureQuick reads what a manifest needs (header, vDSO identity, VMAs,
// fds, auxv, register sets) and injects nothing: the task is stopped only
// for the time it takes to read /proc and the registers.
func (f *Frozen) CaptureQuick() (*image.Task, error) { return f.capture(false) }

func (f *Frozen) capture(injected bool) (*image.Task, error) {
	pid := f.PID
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
		if err != nil {
			return nil, fmt.Errorf("read /proc/%d/%s: %w", pid, name, err)
		}
		return b, nil
	}
	maps, err := readMaps(pid)
	if err != nil {
		return nil, err
	}
	statusB, err := read("status")
	if err != nil {
		return nil, err
	}
	status, err := procfs.ParseStatus(statusB)
	if err != nil {
		return nil, err
	}
	statB, err := read("stat")
	if err != nil {
		return nil, err
	}
	stat, err := procfs.ParseStat(statB)
	if err != nil {
		return nil, err
	}
	auxv, err := read("auxv")
	if err != nil {
		return nil, err
	}
	limitsB, err := read("limits")
	if err != nil {
		return nil, err
	}
	limits, err := procfs.ParseLimits(limitsB)
	if err != nil {
		return nil, err
	}
	cmdline, _ := read("cmdline")
	environ, _ := read("environ")
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil {
		return nil, fmt.Errorf("cwd of %d: %w", pid, err)
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	pers := uint64(0)
	if b, err := read("personality"); err == nil {
		pers, _ = strconv.ParseUint(strings.TrimSpace(string(b)), 16, 32)
	}

	a := f.Arch
	hdr := &image.Header{
		FormatVersion: image.FormatVersion,
		Arch:          image.Arch(a.Kind()),
		WordSize:      uint32(a.WordSize()),
		Abi:           image.ABI(a.ABI()),
		PageSize:      f.PageSize,
		KernelRelease: kernelRelease(),
		Pid:           int32(pid),
		CreatedUnixNs: time.Now().UnixNano(),
	}
	if a.ByteOrder().String() == "BigEndian" {
		hdr.Endian = image.Endian_ENDIAN_BIG
	} else {
		hdr.Endian = image.Endian_ENDIAN_LITTLE
	}
	hostname, _ := os.Hostname()
	hdr.SourceHost = hostname

	t := &image.Task{
		Header:      hdr,
		Cwd:         cwd,
		Comm:        status.Name,
		Cmdline:     cmdline,
		Environ:     environ,
		Personality: uint32(pers),
	}
	if status.HasUmask {
		t.Umask = status.Umask
	}
	t.Creds = &image.Creds{
		Uids: status.Uids, Gids: status.Gids, Groups: status.Groups,
		CapInh: status.CapInh, CapPrm: status.CapPrm, CapEff: status.CapEff,
		CapBnd: status.CapBnd, CapAmb: status.CapAmb, NoNewPrivs: status.NoNewPrivs,
	}
	for _, l := range limits {
		t.Rlimits = append(t.Rlimits, &image.Rlimit{Resource: int32(l.Resource), Cur: l.Cur, Max: l.Max})
	}
	t.Mm = &image.MM{
		StartCode: stat.StartCode, EndCode: stat.EndCode, StartData: stat.StartData, EndData: stat.EndData,
		StartBrk: stat.StartBrk, StartStack: stat.StartStk,
		ArgStart: stat.ArgStart, ArgEnd: stat.ArgEnd, EnvStart: stat.EnvStart, EnvEnd: stat.EnvEnd,
		Auxv: auxv, ExePath: exe,
	}
	if exe != "" {
		if id, err := fileIdentity(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
			t.Mm.Exe = id
		}
	}

	// VMAs.
	var vdso *image.VMA
	for _, m := range maps {
		v, err := vmaOf(pid, m)
		if err != nil {
			return nil, err
		}
		if v.Kind == image.VMAKind_VMA_HEAP {
			t.Mm.Brk = v.End
		}
		if v.Kind == image.VMAKind_VMA_VDSO {
			vdso = v
		}
		t.Vmas = append(t.Vmas, v)
	}
	// brk: the kernel's mm->brk is not in /proc; the [heap] end is its
	// page-aligned value, and start_brk comes from stat. A task that never
	// grew its heap has no [heap] and brk == start_brk.
	if t.Mm.Brk == 0 {
		t.Mm.Brk = t.Mm.StartBrk
	}
	if vdso != nil {
		id, err := vdsoIdentity(pid, t.Vmas, vdso)
		if err != nil {
			return nil, err
		}
		hdr.Vdso = id
	}

	// fds (the preflight already refused unsupported kinds; look again,
	// the task may have opened more before it was frozen).
	fds, err := listFds(pid)
	if err != nil {
		return nil, err
	}
	ue := &UnsupportedError{PID: pid}
	for _, o := range fds {
		if !image.SupportedFdKinds[o.kind] {
			ue.Fds = append(ue.Fds, FdProblem{Fd: o.fd, Kind: o.kind, Target: o.link})
			continue
		}
		fi, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, o.fd))
		if err != nil {
			return nil, fmt.Errorf("fdinfo %d of %d: %w", o.fd, pid, err)
		}
		info, err := procfs.ParseFdInfo(fi)
		if err != nil {
			return nil, err
		}
		fd := &image.Fd{
			Fd: int32(o.fd), Kind: o.kind, Path: o.link, Flags: info.Flags &^ unix.O_CLOEXEC,
			Offset: info.Pos, Cloexec: info.Flags&unix.O_CLOEXEC != 0, Mode: o.st.Mode,
			File: &image.FileIdentity{Dev: o.st.Dev, Ino: o.st.Ino, Size: o.st.Size, MtimeNs: o.st.Mtim.Nano()},
		}
		switch o.kind {
		case image.FdKind_FD_EVENTFD:
			fd.EventfdCount, fd.EventfdSemaphore = info.EventfdCount, info.EventfdSemaphore
			fd.File = nil
		case image.FdKind_FD_DELETED_REGULAR:
			if o.st.Size > MaxDeletedFile {
				ue.Problems = append(ue.Problems, fmt.Sprintf("fd %d is a deleted file of %d bytes (at most %d travel in the image)", o.fd, o.st.Size, MaxDeletedFile))
				continue
			}
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fd/%d", pid, o.fd))
			if err != nil {
				return nil, fmt.Errorf("contents of deleted file on fd %d: %w", o.fd, err)
			}
			fd.Contents = b
			fd.Path = strings.TrimSuffix(o.link, " (deleted)")
			fd.File = nil
		case image.FdKind_FD_EPOLL:
			for _, e := range info.Epoll {
				fd.Epoll = append(fd.Epoll, &image.EpollTarget{Fd: int32(e.Fd), Events: e.Events, Data: e.Data})
			}
			fd.File = nil
		}
		t.Fds = append(t.Fds, fd)
	}
	if _, problems := posixTimers(pid); len(problems) > 0 {
		ue.Problems = append(ue.Problems, problems...)
	}
	if len(ue.Fds) > 0 || len(ue.Problems) > 0 {
		return nil, ue
	}

	// Clocks at the freeze, as the task sees them.
	t.Clocks = TaskClocks(pid)

	// Threads: register sets and what ptrace tells directly.
	for _, th := range f.Threads {
		it, err := f.captureThread(th)
		if err != nil {
			return nil, err
		}
		t.Threads = append(t.Threads, it)
	}
	if shared, err := f.Threads[0].PendingSignals(true); err == nil {
		for _, s := range shared {
			t.SharedPending = append(t.SharedPending, &image.SigInfo{Signo: int32(a.ByteOrder().Uint32(s)), Raw: s})
		}
	}

	// What only the task itself can tell: injected system calls.
	if injected {
		if err := f.captureInjected(t, maps); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// TaskClocks reads pid's CLOCK_MONOTONIC and CLOCK_BOOTTIME as the task
// sees them: this host's, plus the offsets of its time namespace if it is in
// one.
func TaskClocks(pid int) *image.Clocks {
	var mono, boot unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot)
	c := &image.Clocks{MonotonicNs: mono.Nano(), BoottimeNs: boot.Nano()}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/timens_offsets", pid)); err == nil {
		if mo, bo, err := procfs.ParseTimensOffsets(b); err == nil {
			c.MonotonicNs += mo
			c.BoottimeNs += bo
		}
	}
	return c
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func fileIdentity(path string) (*image.FileIdentity, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, err
	}
	return &image.FileIdentity{Dev: st.Dev, Ino: st.Ino, Size: st.Size, MtimeNs: st.Mtim.Nano()}, nil
}

// mmap flag values shared by x86 and powerpc (include/uapi/asm-generic/mman-common.h,
// arch/powerpc/include/uapi/asm/mman.h).
const (
	mapShared    = 0x01
	mapPrivate   = 0x02
	mapGrowsdown = 0x0100
)

func vmaOf(pid int, m procfs.MapEntry) (*image.VMA, error) {
	v := &image.VMA{Start: m.Start, End: m.End, Pgoff: m.Offset, Path: m.Path}
	if m.Read {
		v.Prot |= unix.PROT_READ
	}
	if m.Write {
		v.Prot |= unix.PROT_WRITE
	}
	if m.Exec {
		v.Prot |= unix.PROT_EXEC
	}
	if m.Shared {
		v.Flags |= mapShared
	} else {
		v.Flags |= mapPrivate
	}
	for _, fl := range m.Flags {
		if fl == "gd" {
			v.Flags |= mapGrowsdown
		}
	}
	switch {
	case m.Path == "[heap]":
		v.Kind = image.VMAKind_VMA_HEAP
	case m.Path == "[stack]":
		v.Kind = image.VMAKind_VMA_STACK
	case m.Path == "[vdso]":
		v.Kind = image.VMAKind_VMA_VDSO
	case m.Path == "[vvar]":
		v.Kind = image.VMAKind_VMA_VVAR
	case m.Path == "[vvar_vclock]":
		v.Kind = image.VMAKind_VMA_VVAR_VCLOCK
	case m.Path == "[vsyscall]":
		v.Kind = image.VMAKind_VMA_VSYSCALL
	case m.Shared && (m.Inode == 0 || strings.HasPrefix(m.Path, "/dev/zero") || strings.HasPrefix(m.Path, "/SYSV")):
		v.Kind = image.VMAKind_VMA_ANON_SHARED
		v.Shmid = uint32(m.Inode)
	case m.Inode == 0:
		v.Kind = image.VMAKind_VMA_ANON_PRIVATE
	case m.Shared:
		v.Kind = image.VMAKind_VMA_FILE_SHARED
	default:
		v.Kind = image.VMAKind_VMA_FILE_PRIVATE
	}
	if v.Kind == image.VMAKind_VMA_FILE_PRIVATE || v.Kind == image.VMAKind_VMA_FILE_SHARED {
		if m.Deleted {
			if m.End-m.Start > MaxDeletedFile {
				return nil, &UnsupportedError{PID: pid, Problems: []string{fmt.Sprintf("mapping %#x-%#x of the deleted file %s is larger than %d bytes", m.Start, m.End, m.Path, MaxDeletedFile)}}
			}
			v.Deleted = true
		}
		id, err := fileIdentity(fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, m.Start, m.End))
		if err != nil {
			return nil, fmt.Errorf("identity of mapping %#x-%#x (%s): %w", m.Start, m.End, m.Path, err)
		}
		v.File = id
	}
	return v, nil
}

// vdsoIdentity hashes the [vdso] bytes and records where the other special
// mappings sit relative to it.
func vdsoIdentity(pid int, vmas []*image.VMA, vdso *image.VMA) (*image.VDSOIdentity, error) {
	b := make([]byte, vdso.End-vdso.Start)
	if err := inject.ReadMem(pid, vdso.Start, b); err != nil {
		return nil, fmt.Errorf("read [vdso]: %w", err)
	}
	sum := sha256.Sum256(b)
	id := &image.VDSOIdentity{Sha256: sum[:], VdsoSize: vdso.End - vdso.Start}
	for _, v := range vmas {
		switch v.Kind {
		case image.VMAKind_VMA_VDSO, image.VMAKind_VMA_VVAR, image.VMAKind_VMA_VVAR_VCLOCK:
			id.Layout = append(id.Layout, &image.SpecialMapping{Name: v.Path, Offset: int64(v.Start) - int64(vdso.Start), Size: v.End - v.Start})
		}
	}
	return id, nil
}

func (f *Frozen) captureThread(th *inject.Thread) (*image.Thread, error) {
	a := f.Arch
	it := &image.Thread{Tid: int32(th.TID)}
	for _, rs := range a.Regsets() {
		data, err := th.GetRegset(rs.Note)
		if err != nil {
			if rs.Required {
				return nil, err
			}
			if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EIO) || errors.Is(err, unix.ENODATA) {
				continue
			}
			return nil, err
		}
		it.Regsets = append(it.Regsets, &image.Regset{NoteType: rs.Note, Name: rs.Name, Arch: image.Arch(a.Kind()), Data: data})
	}
	regs, err := a.DecodeRegs(it.Regsets[0].Data)
	if err != nil {
		return nil, fmt.Errorf("thread %d: %w", th.TID, err)
	}
	cpu := &image.CPU{Pc: regs.PC(), Sp: regs.SP(), Tls: regs.TLS(), SyscallNr: -1}
	if nr, ret, ok := regs.InSyscall(); ok {
		cpu.SyscallNr, cpu.SyscallRet = nr, ret
	}
	it.Cpu = cpu
	if it.Sigmask, err = th.Sigmask(); err != nil {
		return nil, err
	}
	if rc, err := th.Rseq(); err == nil && rc.Addr != 0 {
		it.Rseq = &image.Rseq{Addr: rc.Addr, Len: rc.Len, Sig: rc.Sig, Flags: rc.Flags}
	}
	var head, size uint64
	if _, _, e := unix.Syscall(unix.SYS_GET_ROBUST_LIST, uintptr(th.TID), uintptrOf(&head), uintptrOf(&size)); e == 0 && head != 0 {
		it.RobustList = &image.RobustList{Head: head, Len: size}
	}
	pend, err := th.PendingSignals(false)
	if err == nil {
		for _, s := range pend {
			it.Pending = append(it.Pending, &image.SigInfo{Signo: int32(a.ByteOrder().Uint32(s)), Raw: s})
		}
	}
	if c, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", f.PID, th.TID)); err == nil {
		it.Comm = string(bytes.TrimSuffix(c, []byte("\n")))
	}
	// Niceness is per thread; a thread restored without it would take the
	// restoring process's.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", f.PID, th.TID))
	if err != nil {
		return nil, fmt.Errorf("thread %d: %w", th.TID, err)
	}
	st, err := procfs.ParseStat(b)
	if err != nil {
		return nil, fmt.Errorf("thread %d: %w", th.TID, err)
	}
	it.Nice = int32(st.Nice)
	return it, nil
}

// findGadget looks for the arch's syscall instruction in the task's [vdso].
func findGadget(pid int, a arch.Arch, vmas []*image.VMA) (uint64, error) {
	for _, v := range vmas {
		if v.Kind != image.VMAKind_VMA_VDSO {
			continue
		}
		b := make([]byte, v.End-v.Start)
		if err := inject.ReadMem(pid, v.Start, b); err != nil {
			return 0, fmt.Errorf("read [vdso]: %w", err)
		}
		g := a.Gadget()
		step := 1
		if a.Kind() != arch.KindAMD64 && a.Kind() != arch.KindI386 {
			step = 4 // fixed-width instructions
		}
		for off := 0; off+len(g) <= len(b); off += step {
			if bytes.Equal(b[off:off+len(g)], g) {
				return v.Start + uint64(off), nil
			}
		}
	}
	return 0, ErrNoGadget
}

// ErrNoGadget: no syscall instruction to inject from.
var ErrNoGadget = errors.New("no syscall instruction found in the task's [vdso]")
