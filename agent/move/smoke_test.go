package move_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/migrated/migrated/agent/move"
	"github.com/migrated/migrated/compat"
	"github.com/migrated/migrated/transport"
)

func TestMain(m *testing.M) {
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > 2 {
			syscall.Syscall(syscall.SYS_FCNTL, uintptr(n), syscall.F_SETFD, syscall.FD_CLOEXEC)
		}
	}
	syscall.Syscall(syscall.SYS_PRCTL, 36, 1, 0)
	os.Exit(m.Run())
}

// TestSameHostSmoke moves a small counting program between two agents'
// transports in one process on loopback. On one host the PID cannot be
// kept, so the task is allowed a new one; the namespace-host e2e tests
// cover the real thing.
func TestSameHostSmoke(t *testing.T) {
	bin := os.Getenv("SMOKE_BIN")
	if bin == "" || os.Geteuid() != 0 {
		t.Skip("SMOKE_BIN not set or not root")
	}
	log := t.TempDir() + "/log"
	devnull, _ := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	cmd := exec.Command(bin, log)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src, err := transport.New(transport.Options{ListenAddr: "127.0.0.1:0", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := transport.New(transport.Options{ListenAddr: "127.0.0.1:0", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	caps, err := compat.Probe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		s, err := dst.Accept(ctx)
		if err != nil {
			done <- err
			return
		}
		done <- move.Serve(ctx, s, move.DestinationOptions{Caps: caps})
	}()
	s, err := src.Dial(ctx, dst.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := move.Source(ctx, s, cmd.Process.Pid, move.SourceOptions{Host: "dst", AllowNewIDs: true})
	if err != nil {
		t.Fatalf("move: %v (destination: %v)", err, <-done)
	}
	t.Logf("report: %+v", rep)
	if err := <-done; err != nil {
		t.Fatalf("destination: %v", err)
	}
	cmd.Wait()
	time.Sleep(200 * time.Millisecond)
	b, _ := os.ReadFile(log)
	t.Logf("log tail: %s", b[max(0, len(b)-120):])
	syscall.Kill(rep.NewPID, syscall.SIGKILL)
}
