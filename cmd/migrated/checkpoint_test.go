package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The checkpoint and restore commands fail clearly, with a non-zero exit,
// for a bad PID, a process that does not exist, a process the engine
// cannot carry, and a corrupt or truncated image; and a round trip through
// a file keeps the PID.
func TestCheckpointRestoreCLI(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: checkpoint and restore use ptrace and clone3 set_tid")
	}
	// Processes started here must hold only the fds given to them (go test
	// may hand this binary a pipe without close-on-exec).
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > 2 {
			syscall.Syscall(syscall.SYS_FCNTL, uintptr(n), syscall.F_SETFD, syscall.FD_CLOEXEC)
		}
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad pid", []string{"checkpoint", "zero", "-o", img}, exitUsage, "bad pid"},
		{"no output", []string{"checkpoint", "1234"}, exitUsage, "-o FILE"},
		{"no such process", []string{"checkpoint", "999999", "-o", img}, exitFailure, "no such process"},
		{"missing image", []string{"restore", filepath.Join(dir, "none")}, exitFailure, "no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := runCLI(t, nil, c.args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, c.code, c.want)
			}
		})
	}
	if _, err := os.Stat(img); err == nil {
		t.Fatal("a failed checkpoint left an image")
	}

	// A process holding a pipe is refused and left running.
	sleeper := exec.Command("sleep", "60")
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	sleeper.Stdout = w
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleeper.Process.Kill()
	_, stderr, code := runCLI(t, nil, "checkpoint", strconv.Itoa(sleeper.Process.Pid), "-o", img)
	if code != exitFailure || !strings.Contains(stderr, "pipe") {
		t.Fatalf("pipe holder: exit %d, %q", code, stderr)
	}
	if err := sleeper.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the refused process is gone: %v", err)
	}

	// A round trip through a file, then the same image damaged.
	devnull, _ := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	defer devnull.Close()
	task := exec.Command("sleep", "60")
	task.Stdin, task.Stdout, task.Stderr = devnull, devnull, devnull
	if err := task.Start(); err != nil {
		t.Fatal(err)
	}
	pid := task.Process.Pid
	done := make(chan struct{})
	go func() { task.Wait(); close(done) }() // reap the killed original so its PID is free
	if _, stderr, code := runCLI(t, nil, "checkpoint", strconv.Itoa(pid), "-o", img); code != 0 {
		t.Fatalf("checkpoint: exit %d: %s", code, stderr)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the original was not killed")
	}
	good, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", good[:len(good)/2], "truncated"},
		{"bit flip", flip(good, len(good)/3), "checksum"},
		{"not an image", []byte("hello, world, this is not an image"), "magic"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(bad.name, " ", "-"))
		if err := os.WriteFile(p, bad.data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := runCLI(t, nil, "restore", p)
		if code != exitFailure || !strings.Contains(stderr, bad.want) {
			t.Errorf("%s image: exit %d, %q; want %q", bad.name, code, stderr, bad.want)
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			t.Fatalf("%s image: pid %d exists after the refused restore", bad.name, pid)
		}
	}
	stdout, stderr, code := runCLI(t, nil, "restore", img, "--json")
	if code != 0 || !strings.Contains(stdout, `"pid":`+strconv.Itoa(pid)) {
		t.Fatalf("restore: exit %d, %q %q", code, stdout, stderr)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

func flip(b []byte, at int) []byte {
	c := append([]byte(nil), b...)
	c[at] ^= 0x10
	return c
}
