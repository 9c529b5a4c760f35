package workload

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// MarkerEnv is the environment variable every workload carries; its value is
// the work directory.
const MarkerEnv = "MIGRATED_WORKLOAD"

// Opts configures one run of a workload. The zero value runs it as the
// test's uid, in the test's namespaces, with default timeouts.
type Opts struct {
	// Args are the workload's own options (for example "--mode=pause").
	Args []string
	// Env adds to the workload's small fixed environment.
	Env []string
	// Cred runs the workload as another uid/gid; its work directory is
	// given to that uid.
	Cred *syscall.Credential
	// BaseDir is where the work directory is created (default os.TempDir()).
	BaseDir string
	// Wrap, when set, may change the command just before it starts
	// (SysProcAttr.Cloneflags for new namespaces, ExtraFiles, or an
	// nsenter-style launcher as cmd.Path).
	Wrap func(cmd *exec.Cmd) error
	// Launch, when set, starts the workload instead of the driver: the e2e
	// harness uses it to start it inside a namespace host whose init forks
	// and reaps it (nshost.Host.Command). It returns the workload's pid as
	// the test sees it. Wrap is not used then.
	Launch func(l Launch) (int, error)
	// Signal delivers a signal to the given pid; the default is kill(2) in
	// the test's PID namespace. A harness whose PIDs differ sets it.
	Signal func(pid int, sig syscall.Signal) error
	// ReadyTimeout bounds WaitReady (default 60s).
	ReadyTimeout time.Duration
	// FinishTimeout bounds Finish's wait for the result (default 60s).
	FinishTimeout time.Duration
}

// Launch is what a launcher needs to start a workload the way Start would.
type Launch struct {
	// Argv is the program and its arguments (--dir included).
	Argv []string
	// Env is the complete environment, the marker included.
	Env []string
	// Dir is the working directory (the work directory).
	Dir string
	// Output takes stdout and stderr; stdin must be /dev/null.
	Output *os.File
	// Cred is Opts.Cred.
	Cred *syscall.Credential
}

// Proc is one started workload.
type Proc struct {
	// Name is the workload's name.
	Name string
	// Dir is its work directory.
	Dir string
	// Pid is the started process as the test sees it. With a Wrap that
	// launches through an intermediate process it is that process instead;
	// the pid in DIR/ready is the workload's own.
	Pid int

	opts   Opts
	reaped bool
	// launched: started by Opts.Launch, so not a child of the test.
	launched bool
}

// ErrTimeout is returned when a workload does not answer in time.
var ErrTimeout = errors.New("workload timed out")

// ErrGone is returned when a workload died without writing its result.
var ErrGone = errors.New("workload gone without a result")

// Start starts workload name with opts for a test and arranges its
// cleanup: at the end of the test every process carrying its marker is
// killed, and its work directory removed unless the test failed. It skips
// the test when the workload cannot run on this machine.
func (s *Set) Start(t testing.TB, name string, opts Opts) *Proc {
	t.Helper()
	p, err := s.StartProcess(name, opts)
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		keep := t.Failed()
		p.Stop(keep)
		if keep {
			t.Logf("%s: work directory kept: %s", p.Name, p.Dir)
		}
	})
	return p
}

// StartProcess starts workload name outside a test (a benchmark harness, the
// demo). The caller must call Stop when done with it.
func (s *Set) StartProcess(name string, opts Opts) (*Proc, error) {
	argv, err := s.Command(name)
	if err != nil {
		return nil, err
	}
	base := opts.BaseDir
	if base == "" {
		base = os.TempDir()
	}
	dir, err := os.MkdirTemp(base, "wl-"+strings.ReplaceAll(name, "/", "-")+"-")
	if err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	p := &Proc{Name: name, Dir: dir, opts: opts, reaped: true}
	fail := func(err error) (*Proc, error) {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fail(err)
	}
	out, err := os.OpenFile(filepath.Join(dir, "output"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fail(err)
	}
	defer out.Close()
	if c := opts.Cred; c != nil {
		for _, f := range []string{dir, out.Name()} {
			if err := os.Chown(f, int(c.Uid), int(c.Gid)); err != nil {
				return fail(fmt.Errorf("give %s to uid %d: %w", f, c.Uid, err))
			}
		}
	}

	args := append(append(argv[1:], "--dir="+dir), opts.Args...)
	env := append([]string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=/",
		"LANG=C",
		MarkerEnv + "=" + dir,
	}, opts.Env...)
	closeInheritedOnExec()
	if opts.Launch != nil {
		pid, err := opts.Launch(Launch{Argv: append([]string{argv[0]}, args...), Env: env, Dir: dir, Output: out, Cred: opts.Cred})
		if err != nil {
			return fail(fmt.Errorf("launch: %w", err))
		}
		p.Pid, p.launched, p.reaped = pid, true, false
		return p, nil
	}
	cmd := exec.Command(argv[0], args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if opts.Cred != nil {
		cmd.SysProcAttr.Credential = opts.Cred
	}
	if opts.Wrap != nil {
		if err := opts.Wrap(cmd); err != nil {
			return fail(fmt.Errorf("wrap: %w", err))
		}
	}
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	p.Pid, p.reaped = cmd.Process.Pid, false
	// No background Wait (see the package doc); the pid is reaped by Reap,
	// Finish or Stop.
	if err := cmd.Process.Release(); err != nil {
		p.Stop(false)
		return nil, fmt.Errorf("start %s: release: %w", name, err)
	}
	return p, nil
}

// closeInheritedOnExec marks every fd above stderr of the test process
// close-on-exec. Go opens its own files that way, but it does not close
// descriptors the test process inherited (a CI runner's or a shell's pipe,
// say), and a workload holding one would be refused by the engine. Files
// meant for the workload go through cmd.ExtraFiles, which are duplicated
// into the child regardless.
func closeInheritedOnExec() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}

func (p *Proc) path(name string) string { return filepath.Join(p.Dir, name) }

func (p *Proc) timeout(d time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return 60 * time.Second
}

// Output returns what the workload wrote to stdout and stderr.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.path("output"))
	return string(b)
}

// exited reports whether the started process (our child) has exited, and
// reaps it.
func (p *Proc) exited() (bool, string) {
	if p.reaped {
		return true, "reaped"
	}
	if p.launched {
		// Not our child: gone when its pid no longer carries the marker
		// (a zombie's environment reads empty).
		if !p.hasMarker(p.Pid) {
			p.reaped = true
			return true, "gone"
		}
		return false, ""
	}
	var ws unix.WaitStatus
	wpid, err := unix.Wait4(p.Pid, &ws, unix.WNOHANG, nil)
	if err == unix.ECHILD {
		p.reaped = true
		return true, "not a child"
	}
	if err != nil || wpid != p.Pid {
		return false, ""
	}
	if ws.Stopped() { // only a tracer could see this; not ours to consume
		return false, ""
	}
	p.reaped = true
	if ws.Signaled() {
		return true, "killed by " + ws.Signal().String()
	}
	return true, fmt.Sprintf("exit status %d", ws.ExitStatus())
}

// WaitReady waits for DIR/ready and returns the pid the workload wrote
// there (its pid in its own PID namespace).
func (p *Proc) WaitReady() (int, error) {
	deadline := time.Now().Add(p.timeout(p.opts.ReadyTimeout))
	for {
		b, err := os.ReadFile(p.path("ready"))
		if err == nil {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || pid <= 0 {
				return 0, fmt.Errorf("%s: bad ready file %q", p.Name, b)
			}
			return pid, nil
		}
		if p.opts.Wrap == nil && p.opts.Launch == nil {
			if gone, how := p.exited(); gone {
				return 0, fmt.Errorf("%s exited before it was ready (%s): %s", p.Name, how, p.Output())
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s: not ready after %v: %w\n%s", p.Name, p.timeout(p.opts.ReadyTimeout), ErrTimeout, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Signal sends sig to pid through Opts.Signal or kill(2).
func (p *Proc) Signal(pid int, sig syscall.Signal) error {
	if p.opts.Signal != nil {
		return p.opts.Signal(pid, sig)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("signal %v to %s (pid %d): %w", sig, p.Name, pid, err)
	}
	return nil
}

// Progress returns the number of progress lines written so far.
func (p *Proc) Progress() (int, error) {
	b, err := os.ReadFile(p.path("progress.log"))
	if err != nil {
		return 0, err
	}
	return bytes.Count(b, []byte{'\n'}), nil
}

// WaitProgress waits until the workload has written at least n progress
// lines.
func (p *Proc) WaitProgress(n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got, err := p.Progress()
		if err == nil && got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d progress lines after %v, want %d: %w", p.Name, got, timeout, n, ErrTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Finish sends SIGUSR2 to pid, waits for DIR/result and returns it. A FAIL
// is a Result, not an error; errors are timeouts and unreadable results. If
// pid is a child of the test it is reaped.
func (p *Proc) Finish(pid int) (Result, error) {
	if err := p.Signal(pid, syscall.SIGUSR2); err != nil {
		return Result{}, err
	}
	res, err := p.WaitResult()
	if err != nil {
		return Result{}, fmt.Errorf("%w (pid %d signalled)", err, pid)
	}
	p.reapPid(pid, 10*time.Second)
	return res, nil
}

// WaitResult waits for DIR/result (Opts.FinishTimeout) without signalling:
// for a harness that delivers SIGUSR2 itself. It fails with ErrGone as soon
// as no process carries the workload's marker, so call it only while a copy
// runs (not between a checkpoint that killed the original and the restore).
func (p *Proc) WaitResult() (Result, error) {
	to := p.timeout(p.opts.FinishTimeout)
	deadline := time.Now().Add(to)
	nextAlive := time.Now().Add(200 * time.Millisecond)
	read := func() (Result, bool, error) {
		b, err := os.ReadFile(p.path("result"))
		if err != nil {
			return Result{}, false, nil
		}
		res, err := ParseResult(b)
		if err != nil {
			return Result{}, true, fmt.Errorf("%s: %w", p.Name, err)
		}
		return res, true, nil
	}
	for {
		if res, ok, err := read(); ok {
			return res, err
		}
		// Fail fast when no copy of the workload is alive any more (it
		// crashed, or was killed); a zombie's environment reads empty.
		if time.Now().After(nextAlive) {
			nextAlive = time.Now().Add(200 * time.Millisecond)
			if len(p.Pids()) == 0 {
				if res, ok, err := read(); ok {
					return res, err
				}
				return Result{}, fmt.Errorf("%s: %w: no process carries its marker and it left no result\n%s", p.Name, ErrGone, p.Output())
			}
		}
		if time.Now().After(deadline) {
			return Result{}, fmt.Errorf("%s: no result %v after SIGUSR2: %w\n%s", p.Name, to, ErrTimeout, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reapPid waits for pid to exit when it is our child (the original, or a
// restored process adopted by a subreaper test).
func (p *Proc) reapPid(pid int, timeout time.Duration) {
	if p.launched {
		return
	}
	if pid == p.Pid {
		_ = p.Reap(timeout)
		return
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if err != nil || (wpid == pid && !ws.Stopped()) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Reap waits up to timeout for the started process to exit and reaps it,
// so that its PID is free again (a checkpoint that kills the original
// leaves a zombie until its parent, the test, reaps it).
func (p *Proc) Reap(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if gone, _ := p.exited(); gone {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s (pid %d) still running after %v: %w", p.Name, p.Pid, timeout, ErrTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Pids returns the PIDs, in the test's PID namespace, of every process
// carrying this workload's marker: the original, or its restored copy in
// whichever PID namespace it lives.
func (p *Proc) Pids() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && p.hasMarker(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// hasMarker reports whether pid is a live process carrying the marker.
func (p *Proc) hasMarker(pid int) bool {
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	marker := []byte(MarkerEnv + "=" + p.Dir + "\x00")
	return bytes.HasPrefix(env, marker) || bytes.Contains(env, append([]byte{0}, marker...))
}

// Stop kills every copy of the workload, reaps the one that is our child,
// and removes the work directory unless keepDir.
func (p *Proc) Stop(keepDir bool) {
	for _, pid := range p.Pids() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		p.reapPid(pid, 5*time.Second)
	}
	if !p.reaped && !p.launched {
		_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		_ = p.Reap(5 * time.Second)
	}
	if !keepDir {
		os.RemoveAll(p.Dir)
	}
}
