package hosts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DemoOptions tune Demo.
type DemoOptions struct {
	// Bin is the migrated binary (default: this executable).
	Bin string
	// SizeMiB is the memory of the workload moved (default 256).
	SizeMiB int
	// Out receives the narration and the move's report.
	Out io.Writer
	// MoveArgs are extra flags for `migrated move`.
	MoveArgs []string
}

// Demo starts two namespace hosts with an agent in each, starts the mixed
// benchmark workload (a quarter zero pages, half random, a quarter text,
// 1000 pages dirtied per second, a 1 ms heartbeat) in host a, moves it to
// host b with `migrated move`, and then lets the workload check itself and
// report the longest gap its own heartbeat saw.
func Demo(ctx context.Context, o DemoOptions) error {
	if os.Geteuid() != 0 {
		return errors.New("the demo needs root (network and PID namespaces, ptrace)")
	}
	if o.Bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.Bin = exe
	}
	if o.SizeMiB == 0 {
		o.SizeMiB = 256
	}
	// Whatever this process inherited must not leak into the hosts and the
	// workload: a stray pipe would make the workload unmovable.
	CloseInheritedOnExec()
	out := o.Out
	if out == nil {
		out = os.Stdout
	}
	src, err := workloadsDir()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "migrated-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	prog := filepath.Join(dir, "mixed")
	if b, err := exec.CommandContext(ctx, "gcc", "-O2", "-o", prog, filepath.Join(src, "mixed.c")).CombinedOutput(); err != nil {
		return fmt.Errorf("build the workload (gcc): %v\n%s", err, b)
	}
	fmt.Fprintf(out, "starting two hosts (network, PID and mount namespaces) with an agent in each...\n")
	if err := os.MkdirAll(filepath.Join(dir, "hosts"), 0o755); err != nil {
		return err
	}
	env, err := Setup(ctx, Options{Hosts: 2, Bin: o.Bin, Dir: filepath.Join(dir, "hosts")})
	if err != nil {
		return err
	}
	defer env.Close()
	a, b := env.Host(0), env.Host(1)
	fmt.Fprintf(out, "  host a: %s, host b: %s\n", a.Addr, b.Addr)

	wdir := filepath.Join(dir, "work")
	if err := os.MkdirAll(wdir, 0o755); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(wdir, "output"))
	if err != nil {
		return err
	}
	defer logf.Close()
	w := a.Command(ctx, prog, "--dir="+wdir, fmt.Sprintf("--size-mib=%d", o.SizeMiB))
	w.Env = []string{"PATH=/usr/bin:/bin", "MIGRATED_WORKLOAD=" + wdir}
	w.Dir, w.Stdout, w.Stderr = wdir, logf, logf
	if err := w.Start(); err != nil {
		return fmt.Errorf("start the workload: %w", err)
	}
	pid, err := waitFile(ctx, filepath.Join(wdir, "ready"), 2*time.Minute)
	if err != nil {
		return fmt.Errorf("workload: %w (output: %s)", err, readTail(filepath.Join(wdir, "output")))
	}
	fmt.Fprintf(out, "workload: pid %s in host a, %d MiB, dirtying 1000 pages/s, 1 ms heartbeat\n", pid, o.SizeMiB)
	time.Sleep(time.Second)

	fmt.Fprintf(out, "\n$ migrated move %s b %s   (run inside host a)\n", pid, strings.Join(o.MoveArgs, " "))
	mv := a.Command(ctx, o.Bin, append([]string{"move", pid, "b"}, o.MoveArgs...)...)
	mv.Stdout, mv.Stderr = out, out
	if f, ok := out.(*os.File); ok {
		mv.Stdout, mv.Stderr = f, f
	}
	if err := mv.Run(); err != nil {
		return fmt.Errorf("move: %w (agent logs in %s)", err, filepath.Join(dir, "hosts", "logs"))
	}
	n, _ := strconv.Atoi(pid)
	fmt.Fprintf(out, "\nhost a has pid %s: %v; host b has pid %s: %v\n", pid, a.HasPID(n), pid, b.HasPID(n))
	if err := b.Signal(n, syscall.SIGUSR2); err != nil {
		return fmt.Errorf("ask the workload to check itself: %w", err)
	}
	res, err := waitFile(ctx, filepath.Join(wdir, "result"), 2*time.Minute)
	if err != nil {
		return fmt.Errorf("workload result: %w", err)
	}
	status, fields := parseResult(res)
	fmt.Fprintf(out, "workload self-check on host b: %s\n", status)
	if g, ok := fields["max_gap_us"]; ok {
		us, _ := strconv.ParseFloat(g, 64)
		fmt.Fprintf(out, "longest gap in the workload's own 1 ms heartbeat (its view of the downtime): %.1f ms\n", us/1000)
	}
	if status != "PASS" {
		return fmt.Errorf("the workload failed its check: %s", status)
	}
	return nil
}

func workloadsDir() (string, error) {
	if d := os.Getenv("MIGRATED_WORKLOADS_SRC"); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		c := filepath.Join(d, "e2e", "workloads")
		if _, err := os.Stat(filepath.Join(c, "mixed.c")); err == nil {
			return c, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("e2e/workloads not found: run the demo from the repository (or set MIGRATED_WORKLOADS_SRC)")
		}
	}
}

// waitFile waits for a file written atomically by the workload and returns
// its content, trimmed.
func waitFile(ctx context.Context, path string, limit time.Duration) (string, error) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil {
			return strings.TrimSpace(string(b)), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("%s did not appear in %v", filepath.Base(path), limit)
}

func parseResult(s string) (string, map[string]string) {
	lines := strings.Split(s, "\n")
	fields := map[string]string{}
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, "="); ok {
			fields[k] = v
		}
	}
	return lines[0], fields
}

func readTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 500 {
		b = b[len(b)-500:]
	}
	return string(b)
}

// CloseInheritedOnExec marks every fd above stderr close-on-exec, so that
// programs started from here hold only the fds they are given.
func CloseInheritedOnExec() {
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > 2 {
			syscall.Syscall(syscall.SYS_FCNTL, uintptr(n), syscall.F_SETFD, syscall.FD_CLOEXEC)
		}
	}
}
