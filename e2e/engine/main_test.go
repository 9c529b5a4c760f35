package engine_test

import (
	"os"
	"strconv"
	"syscall"
	"testing"
)

// TestMain marks every inherited fd above stderr close-on-exec, so that
// workloads started by the tests hold only the fds the tests give them (go
// test can hand its test binaries pipes without FD_CLOEXEC), and makes this
// process a child subreaper so that killed originals are reaped at once and
// their PIDs are free for the restore (PID 1 here reaps lazily).
func TestMain(m *testing.M) {
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > 2 {
			syscall.Syscall(syscall.SYS_FCNTL, uintptr(n), syscall.F_SETFD, syscall.FD_CLOEXEC)
		}
	}
	const prSetChildSubreaper = 36
	syscall.Syscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	os.Exit(m.Run())
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: ptrace of other processes, clone3 with set_tid and PR_SET_MM_MAP")
	}
}
