package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"

	"github.com/migrated/migrated/arch"
	// task arches this engine knows
	_ "github.com/migrated/migrated/arch/powerpc"
	_ "github.com/migrated/migrated/arch/x86"
	"github.com/migrated/migrated/inject"
	"golang.org/x/sys/unix"
)

// Frozen is a task whose every thread is stopped under our ptrace.
type Frozen struct {
	PID      int
	Arch     arch.Arch
	Threads  []*inject.Thread // Threads[0] is the thread-group leader
	PageSize uint64
	// Injected counts the system calls and code runs the captures so far
	// injected into the task: what most of a capture's time goes to.
	Injected int
	tracer   *inject.Tracer
	released bool
}

// Freeze seizes and stops every thread of pid. Threads created while it
// works are found by listing /proc/PID/task again until the list is stable;
// threads that exit meanwhile are dropped.
func Freeze(pid int) (*Frozen, error) {
	if err := unix.Kill(pid, 0); err != nil {
		if err == unix.ESRCH {
			return nil, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
		}
		if err == unix.EPERM {
			return nil, fmt.Errorf("process %d: %w", pid, ErrPermission)
		}
	}
	f := &Frozen{PID: pid, tracer: inject.NewTracer(), PageSize: uint64(os.Getpagesize())}
	seen := map[int]*inject.Thread{}
	for round := 0; round < 100; round++ {
		tids, err := listTids(pid)
		if err != nil {
			f.abort()
			return nil, err
		}
		fresh := 0
		for _, tid := range tids {
			if seen[tid] != nil {
				continue
			}
			th := f.tracer.Thread(tid, nil)
			// Injected calls must not meet the task's seccomp filter (a
			// filter that kills would end the task mid-checkpoint):
			// PTRACE_O_SUSPEND_SECCOMP, which needs CAP_SYS_ADMIN; without
			// it, plain options.
			err := th.Seize(inject.PtraceOptions | unix.PTRACE_O_SUSPEND_SECCOMP)
			if errors.Is(err, unix.EPERM) {
				err = th.Seize(inject.PtraceOptions)
			}
			if err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // exited meanwhile
				}
				f.abort()
				if errors.Is(err, unix.EPERM) {
					return nil, fmt.Errorf("process %d: %w: %v", pid, ErrPermission, err)
				}
				return nil, fmt.Errorf("freeze %d: %w", pid, err)
			}
			seen[tid] = th
			f.Threads = append(f.Threads, th)
			fresh++
			if err := th.Freeze(); err != nil {
				if errors.Is(err, inject.ErrGone) {
					continue
				}
				f.abort()
				return nil, fmt.Errorf("freeze %d: %w", pid, err)
			}
		}
		if fresh == 0 {
			break
		}
	}
	// Keep the live threads, leader first.
	live := f.Threads[:0]
	for _, th := range f.Threads {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", pid, th.TID)); err == nil {
			live = append(live, th)
		}
	}
	f.Threads = live
	sort.Slice(f.Threads, func(i, j int) bool {
		if f.Threads[i].TID == pid {
			return true
		}
		if f.Threads[j].TID == pid {
			return false
		}
		return f.Threads[i].TID < f.Threads[j].TID
	})
	if len(f.Threads) == 0 || f.Threads[0].TID != pid {
		f.abort()
		return nil, fmt.Errorf("process %d: %w (its leader exited while freezing)", pid, ErrNoProcess)
	}
	a, err := detectArch(f.Threads[0])
	if err != nil {
		f.abort()
		return nil, err
	}
	f.Arch = a
	for _, th := range f.Threads {
		th.Arch = a
	}
	return f, nil
}

func listTids(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
		}
		return nil, err
	}
	var out []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// detectArch tells the task's arch from the length of its NT_PRSTATUS, as
// the kernel lays it out for this (64-bit) tracer: that is how a 32-bit
// tracee shows itself.
func detectArch(th *inject.Thread) (arch.Arch, error) {
	raw, err := th.GetRegset(arch.NT_PRSTATUS)
	if err != nil {
		return nil, err
	}
	var candidates []arch.Kind
	switch runtime.GOARCH {
	case "amd64":
		candidates = []arch.Kind{arch.KindAMD64, arch.KindI386}
	case "ppc64le":
		candidates = []arch.Kind{arch.KindPPC64LE}
	case "ppc64":
		candidates = []arch.Kind{arch.KindPPC64, arch.KindPPC32}
	}
	for _, k := range candidates {
		a, err := arch.Lookup(k)
		if err != nil {
			continue
		}
		if a.GPRSize() == len(raw) {
			return a, nil
		}
	}
	return nil, fmt.Errorf("thread %d: NT_PRSTATUS of %d bytes matches no task arch of a %s host: %w",
		th.TID, len(raw), runtime.GOARCH, arch.ErrUnsupported)
}

// Thaw releases every thread: the task runs on as if nothing happened.
func (f *Frozen) Thaw() error {
	if f.released {
		return nil
	}
	f.released = true
	var first error
	for _, th := range f.Threads {
		if err := th.Release(); err != nil && first == nil && !errors.Is(err, unix.ESRCH) {
			first = err
		}
	}
	f.tracer.Close()
	return first
}

// Kill ends the frozen task (SIGKILL to the whole group) and waits, as its
// tracer, until every thread has died: a killed traced thread stays a
// zombie until its tracer reaps it, and would keep the group alive.
func (f *Frozen) Kill() error {
	if f.released {
		return nil
	}
	f.released = true
	err := unix.Kill(f.PID, unix.SIGKILL)
	for i := len(f.Threads) - 1; i >= 0; i-- { // the leader, Threads[0], last
		f.Threads[i].WaitGone()
	}
	f.tracer.Close()
	if err != nil && err != unix.ESRCH {
		return fmt.Errorf("kill %d: %w", f.PID, err)
	}
	return nil
}

func (f *Frozen) abort() {
	for _, th := range f.Threads {
		_ = th.Release()
	}
	f.released = true
	f.tracer.Close()
}
