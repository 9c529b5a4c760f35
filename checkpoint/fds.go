package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/migrated/migrated/image"
	"golang.org/x/sys/unix"
)

// FdProblem names one fd the engine cannot carry.
type FdProblem struct {
	Fd     int
	Kind   image.FdKind
	Target string // what /proc/PID/fd/N points at
}

// UnsupportedError refuses a task before it is frozen. The task is untouched.
type UnsupportedError struct {
	PID      int
	Fds      []FdProblem
	Problems []string // other reasons, one sentence each
}

// ErrUnsupported matches every *UnsupportedError.
var ErrUnsupported = errors.New("task cannot be moved")

func (e *UnsupportedError) Is(t error) bool { return t == ErrUnsupported }

func (e *UnsupportedError) Error() string {
	var parts []string
	for _, p := range e.Fds {
		parts = append(parts, fmt.Sprintf("fd %d is a %s (%s)", p.Fd, image.FdKindName(p.Kind), p.Target))
	}
	parts = append(parts, e.Problems...)
	return fmt.Sprintf("process %d cannot be moved: %s", e.PID, strings.Join(parts, "; "))
}

// classifyFd tells the kind of an fd from its /proc link and a stat of it.
func classifyFd(link string, st *unix.Stat_t) image.FdKind {
	switch {
	case strings.HasPrefix(link, "pipe:"):
		return image.FdKind_FD_PIPE
	case strings.HasPrefix(link, "socket:"):
		return image.FdKind_FD_SOCKET
	case strings.HasPrefix(link, "anon_inode:"):
		switch strings.TrimPrefix(link, "anon_inode:") {
		case "[eventfd]":
			return image.FdKind_FD_EVENTFD
		case "[eventpoll]":
			return image.FdKind_FD_EPOLL
		case "[signalfd]":
			return image.FdKind_FD_SIGNALFD
		case "[timerfd]":
			return image.FdKind_FD_TIMERFD
		case "inotify":
			return image.FdKind_FD_INOTIFY
		case "[pidfd]":
			return image.FdKind_FD_PIDFD
		}
		return image.FdKind_FD_ANON_OTHER
	case strings.HasPrefix(link, "/memfd:"):
		return image.FdKind_FD_MEMFD
	}
	if st == nil {
		return image.FdKind_FD_ANON_OTHER
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if strings.HasSuffix(link, " (deleted)") || st.Nlink == 0 {
			return image.FdKind_FD_DELETED_REGULAR
		}
		return image.FdKind_FD_REGULAR
	case unix.S_IFDIR:
		return image.FdKind_FD_DIRECTORY
	case unix.S_IFCHR:
		maj, min := unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
		switch {
		case maj == 1 && min == 3:
			return image.FdKind_FD_DEV_NULL
		case maj == 1 && min == 5:
			return image.FdKind_FD_DEV_ZERO
		case maj == 4 || maj == 5 || (maj >= 136 && maj <= 143):
			return image.FdKind_FD_TTY
		}
		return image.FdKind_FD_CHAR_OTHER
	case unix.S_IFBLK:
		return image.FdKind_FD_BLOCK
	case unix.S_IFIFO:
		return image.FdKind_FD_PIPE
	case unix.S_IFSOCK:
		return image.FdKind_FD_SOCKET
	}
	return image.FdKind_FD_ANON_OTHER
}

// openFd is what the source knows of one fd before and after freezing.
type openFd struct {
	fd   int
	link string
	kind image.FdKind
	st   unix.Stat_t
}

// listFds reads /proc/PID/fd.
func listFds(pid int) ([]openFd, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list fds of %d: %w", pid, err)
	}
	var out []openFd
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p := filepath.Join(dir, e.Name())
		link, err := os.Readlink(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // closed meanwhile
			}
			return nil, fmt.Errorf("fd %d of %d: %w", n, pid, err)
		}
		o := openFd{fd: n, link: link}
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err == nil {
			o.st = st
			o.kind = classifyFd(link, &st)
		} else {
			o.kind = classifyFd(link, nil)
		}
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].fd < out[j].fd })
	return out, nil
}

// Preflight checks, without stopping or changing the task, that the engine
// can carry it. It returns an *UnsupportedError naming every problem.
func Preflight(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("bad pid %d", pid)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("process %d: %w", pid, ErrNoProcess)
		}
		return fmt.Errorf("process %d: %w", pid, err)
	}
	fds, err := listFds(pid)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("process %d: %w", pid, ErrPermission)
		}
		return err
	}
	ue := &UnsupportedError{PID: pid}
	for _, f := range fds {
		if !image.SupportedFdKinds[f.kind] {
			ue.Fds = append(ue.Fds, FdProblem{Fd: f.fd, Kind: f.kind, Target: f.link})
		}
	}
	if pid == os.Getpid() {
		ue.Problems = append(ue.Problems, "it is this process")
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := strings.LastIndexByte(string(st), ')'); i > 0 && i+2 < len(st) && st[i+2] == 'T' {
			// Injecting into a group-stopped task does not work (each
			// resume re-enters the group stop), and a SIGCONT would run
			// its handlers: refuse it, untouched.
			ue.Problems = append(ue.Problems, "it is stopped (SIGSTOP or a job-control stop): continue it (SIGCONT) first")
		}
	}
	if _, problems := posixTimers(pid); len(problems) > 0 {
		ue.Problems = append(ue.Problems, problems...)
	}
	if len(ue.Fds) > 0 || len(ue.Problems) > 0 {
		return ue
	}
	return nil
}

// Errors for the caller to act on.
var (
	ErrNoProcess  = errors.New("no such process")
	ErrPermission = errors.New("permission denied (need root or the process's owner, and ptrace access)")
)
