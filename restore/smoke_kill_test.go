package restore_test

import (
	"os"
	"strconv"
	"syscall"
	"testing"
)

func syscallKill(pid int) { syscall.Kill(pid, syscall.SIGKILL) }

// TestMain marks every inherited fd above stderr close-on-exec, so that
// workloads started by the tests hold only the fds the tests give them
// (go test can hand its test binaries pipes without FD_CLOEXEC).
func TestMain(m *testing.M) {
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > 2 {
			syscall.Syscall(syscall.SYS_FCNTL, uintptr(n), syscall.F_SETFD, syscall.FD_CLOEXEC)
		}
	}
	os.Exit(m.Run())
}
