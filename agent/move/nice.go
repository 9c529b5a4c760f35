package move

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/image"
)

// A thread's niceness is not in what checkpoint reads, and a restored
// thread would inherit the restoring agent's (an agent runs at nice 10):
// the source records each thread's, the destination gives it back before
// the task resumes.

// recordNice sets Nice of every thread of t from /proc (field 19 of
// /proc/PID/task/TID/stat). A thread that cannot be read keeps 0.
func recordNice(pid int, t *image.Task) {
	for _, th := range t.Threads {
		if n, err := threadNice(pid, int(th.Tid)); err == nil {
			th.Nice = int32(n)
		}
	}
}

func threadNice(pid, tid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
	if err != nil {
		return 0, err
	}
	return parseStatNice(string(b))
}

// parseStatNice reads the nice field (19) of a /proc stat line.
func parseStatNice(s string) (int, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no comm")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 17 {
		return 0, fmt.Errorf("stat: %d fields", len(f)+2)
	}
	n, err := strconv.Atoi(f[16])
	if err != nil || n < -20 || n > 19 {
		return 0, fmt.Errorf("stat: nice %q", f[16])
	}
	return n, nil
}

// deprioritize sets every thread of pid to nice 19 (best effort).
func deprioritize(pid int) {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			_ = unix.Setpriority(unix.PRIO_PROCESS, tid, 19)
		}
	}
}

// applyNice gives each thread of the restored task (pid here; a task with
// one thread may have a new PID) the niceness it had on the source.
func applyNice(pid int, t *image.Task) error {
	for _, th := range t.Threads {
		tid := int(th.Tid)
		if len(t.Threads) == 1 {
			tid = pid
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, int(th.Nice)); err != nil {
			return fmt.Errorf("nice %d for thread %d: %w", th.Nice, tid, err)
		}
	}
	return nil
}
