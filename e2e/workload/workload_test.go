package workload

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

var resultTests = []struct {
	name, in string
	want     Result
	err      error
}{
	{"pass", "PASS\n", Result{Status: "PASS", Fields: map[string]string{}}, nil},
	{"pass fields", "PASS\nprogress=12\nmax_gap_us=345\n",
		Result{Status: "PASS", Fields: map[string]string{"progress": "12", "max_gap_us": "345"}}, nil},
	{"fail", "FAIL: heap differs at 0x10\nfailures=2\n",
		Result{Status: "FAIL: heap differs at 0x10", Fields: map[string]string{"failures": "2"}}, nil},
	{"value with =", "PASS\ntids=a=b\n", Result{Status: "PASS", Fields: map[string]string{"tids": "a=b"}}, nil},
	{"empty", "", Result{}, ErrBadResult},
	{"no newline", "PASS", Result{}, ErrBadResult},
	{"fail without reason", "FAIL: \n", Result{}, ErrBadResult},
	{"other status", "OK\n", Result{}, ErrBadResult},
	{"bad field", "PASS\nnonsense\n", Result{}, ErrBadResult},
	{"empty key", "PASS\n=1\n", Result{}, ErrBadResult},
	{"repeated key", "PASS\na=1\na=2\n", Result{}, ErrBadResult},
}

func TestParseResult(t *testing.T) {
	for _, tt := range resultTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseResult([]byte(tt.in))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if got.Status != tt.want.Status || fmt.Sprint(got.Fields) != fmt.Sprint(tt.want.Fields) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if got.Passed() != (tt.want.Status == "PASS") {
				t.Fatalf("Passed() = %v", got.Passed())
			}
		})
	}
}

func FuzzParseResult(f *testing.F) {
	for _, tt := range resultTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResult(b)
		if err != nil {
			return
		}
		if r.Status != "PASS" && !strings.HasPrefix(r.Status, "FAIL: ") {
			t.Fatalf("accepted status %q", r.Status)
		}
		for k, v := range r.Fields {
			if k == "" || strings.ContainsRune(k, '\n') || strings.ContainsRune(v, '\n') {
				t.Fatalf("bad field %q=%q", k, v)
			}
		}
	})
}

func TestChainFinal(t *testing.T) {
	h := sha256.Sum256([]byte("s"))
	if got := ChainFinal("s", 0); got != hex.EncodeToString(h[:]) {
		t.Fatalf("0 steps: %s", got)
	}
	next := sha256.Sum256(append(h[:], 0, 0, 0, 0, 0, 0, 0, 0))
	if got := ChainFinal("s", 1); got != hex.EncodeToString(next[:]) {
		t.Fatalf("1 step: %s", got)
	}
}

// run is one unmoved run of a workload in the driver tests.
type run struct {
	name string
	args []string
	// poke runs between ready and finish (after a few progress lines).
	poke func(p *Proc, pid int) error
	// check inspects a PASS result.
	check func(r Result) error
}

// chainSteps is kept small so the unmoved chain runs in well under a second.
const chainSteps = 30000

func fieldAtLeast(key string, min int64) func(Result) error {
	return func(r Result) error {
		n, err := r.Int(key)
		if err != nil {
			return err
		}
		if n < min {
			return fmt.Errorf("%s=%d, want at least %d", key, n, min)
		}
		return nil
	}
}

func runs(s *Set) []run {
	pause := func(p *Proc, pid int) error {
		for i := 0; i < 3; i++ {
			before, _ := p.Progress()
			if err := p.Signal(pid, syscall.SIGUSR1); err != nil {
				return err
			}
			if err := p.WaitProgress(before+1, 20*time.Second); err != nil {
				return fmt.Errorf("SIGUSR1 did not wake pause(): %w", err)
			}
		}
		return nil
	}
	rs := []run{
		{name: "simple", args: []string{"--mode=busy"}, check: fieldAtLeast("iterations", 1)},
		{name: "simple", args: []string{"--mode=nanosleep"}, check: fieldAtLeast("sleeps", 1)},
		{name: "simple", args: []string{"--mode=pause"}, poke: pause, check: fieldAtLeast("wakeups", 3)},
		{name: "simple-static", args: []string{"--mode=nanosleep"}},
		{name: "simple-i386", args: []string{"--mode=nanosleep"}},
		{name: "simple-i386-static", args: []string{"--mode=pause"}, poke: pause},
		{name: "threads", check: fieldAtLeast("rt_signals", 1)},
		{name: "threads-static"},
		{name: "threads-i386"},
		{name: "mixed", args: []string{"--size-mib=32"}, check: func(r Result) error {
			if _, err := r.Int("max_gap_us"); err != nil {
				return err
			}
			return fieldAtLeast("heartbeats", 10)(r)
		}},
		{name: "gowork", check: fieldAtLeast("delivered", 1)},
		{name: "chain", args: []string{fmt.Sprintf("--steps=%d", chainSteps), "--batch=1000", "--seed=driver-test"},
			check: func(r Result) error {
				if want := ChainFinal("driver-test", chainSteps); r.Fields["final"] != want {
					return fmt.Errorf("final=%s, an independent computation gives %s", r.Fields["final"], want)
				}
				return nil
			}},
	}
	for _, z := range s.ZDTM() {
		rs = append(rs, run{name: z}, run{name: z + "-i386"})
	}
	return rs
}

// slots bounds how many workloads run at once: the machine has 2 cores and
// some workloads spin.
var slots = make(chan struct{}, 3)

func runOne(t *testing.T, s *Set, r run, corrupt bool) {
	slots <- struct{}{}
	defer func() { <-slots }()
	args := r.args
	if corrupt {
		args = append(append([]string{}, args...), "--corrupt")
	}
	p := s.Start(t, r.name, Opts{Args: args})
	pid, err := p.WaitReady()
	if err != nil {
		t.Fatal(err)
	}
	if pid != p.Pid {
		t.Fatalf("ready says pid %d, started pid %d", pid, p.Pid)
	}
	if err := checkFds(pid, r.name == "gowork"); err != nil {
		t.Fatal(err)
	}
	if r.poke == nil {
		if err := p.WaitProgress(3, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	} else {
		if err := r.poke(p, pid); err != nil {
			t.Fatal(err)
		}
	}
	res, err := p.Finish(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Pids()) != 0 {
		t.Fatalf("%s still running after its result", r.name)
	}
	if corrupt {
		if res.Passed() {
			t.Fatalf("--corrupt: the check passed; it must fail (fields %v)", res.Fields)
		}
		t.Logf("--corrupt: %s", res.Status)
		return
	}
	if !res.Passed() {
		t.Fatalf("%s\nfields: %v\noutput:\n%s", res.Status, res.Fields, p.Output())
	}
	if _, err := res.Int("progress"); err != nil {
		t.Fatal(err)
	}
	if r.check != nil {
		if err := r.check(res); err != nil {
			t.Fatal(err)
		}
	}
}

// checkFds holds every workload to what the engine can carry (issue 2):
// regular files, directories, /dev/null and /dev/zero; the Go runtime may
// add its epoll and eventfd descriptors.
func checkFds(pid int, goRuntime bool) error {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		link, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			return err
		}
		if link == "/dev/null" || link == "/dev/zero" {
			continue
		}
		if goRuntime && (link == "anon_inode:[eventpoll]" || link == "anon_inode:[eventfd]") {
			continue
		}
		st, err := os.Stat(dir + "/" + e.Name())
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() && !st.IsDir() {
			return fmt.Errorf("fd %s is %s (%v): not a kind the engine carries", e.Name(), link, st.Mode().Type())
		}
	}
	return nil
}

func testName(r run) string {
	n := r.name
	for _, a := range r.args {
		if strings.HasPrefix(a, "--mode=") {
			n += "/" + strings.TrimPrefix(a, "--mode=")
		}
	}
	return n
}

// TestUnmoved runs every workload without moving it: each must PASS its
// own check, so that a FAIL after a move is the move's doing.
func TestUnmoved(t *testing.T) {
	s := Build(t)
	for _, r := range runs(s) {
		t.Run(testName(r), func(t *testing.T) {
			t.Parallel()
			runOne(t, s, r, false)
		})
	}
}

// TestCorruptFails proves that each workload's check can fail: with
// --corrupt it damages its own state before the check and must report FAIL.
func TestCorruptFails(t *testing.T) {
	s := Build(t)
	seen := map[string]bool{}
	for _, r := range runs(s) {
		if seen[r.name] {
			continue // one run per program is enough
		}
		seen[r.name] = true
		r.poke = nil
		if strings.HasPrefix(testName(r), "simple") {
			r.args = []string{"--mode=nanosleep"}
		}
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			runOne(t, s, r, true)
		})
	}
}

func TestUnknownAndUnavailable(t *testing.T) {
	s := Build(t)
	if _, err := s.Command("no-such-workload"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown workload: %v", err)
	}
	for _, n := range s.Names() {
		ok, why := s.Available(n)
		if !ok {
			if _, err := s.Command(n); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("%s unavailable (%s) but Command says %v", n, why, err)
			}
			t.Logf("%s: unavailable: %s", n, why)
		}
	}
}

// TestOtherUID runs a workload as another uid: its work directory is given
// to that uid and the workload passes its check as that uid.
func TestOtherUID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a process as another uid")
	}
	s := Build(t)
	const uid, gid = 65534, 65534
	p := s.Start(t, "threads", Opts{Cred: &syscall.Credential{Uid: uid, Gid: gid}})
	pid, err := p.WaitReady()
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(st), fmt.Sprintf("\nUid:\t%d\t%d\t%d\t%d\n", uid, uid, uid, uid)) {
		t.Fatalf("workload does not run as uid %d:\n%s", uid, st)
	}
	if err := p.WaitProgress(3, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	res, err := p.Finish(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Passed() {
		t.Fatalf("%s\n%s", res.Status, p.Output())
	}
}

// TestWrapNewPIDNamespace starts a workload in a new PID namespace through
// the Wrap hook, as the e2e harness does: it reports pid 1 in DIR/ready,
// Pids finds it by its marker, and it finishes when signalled by the pid
// the test sees.
func TestWrapNewPIDNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for CLONE_NEWPID")
	}
	s := Build(t)
	p := s.Start(t, "simple", Opts{
		Args: []string{"--mode=nanosleep"},
		Wrap: func(cmd *exec.Cmd) error {
			cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWPID
			return nil
		},
	})
	pid, err := p.WaitReady()
	if err != nil {
		t.Fatal(err)
	}
	if pid != 1 {
		t.Fatalf("in a new PID namespace the workload says it is pid %d, want 1", pid)
	}
	if got := p.Pids(); len(got) != 1 || got[0] != p.Pid {
		t.Fatalf("Pids() = %v, want [%d]", got, p.Pid)
	}
	if err := p.WaitProgress(3, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	res, err := p.Finish(p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Passed() {
		t.Fatalf("%s\n%s", res.Status, p.Output())
	}
	if res.Fields["pid"] != "1" {
		t.Fatalf("result pid=%s, want 1", res.Fields["pid"])
	}
}

// TestLaunch starts a workload through Opts.Launch, as the namespace-host
// harness does: the launcher, not the test, is its parent and reaps it.
func TestLaunch(t *testing.T) {
	s := Build(t)
	reaped := make(chan error, 1)
	var launched Launch
	p := s.Start(t, "zdtm/umask", Opts{Launch: func(l Launch) (int, error) {
		launched = l
		cmd := exec.Command(l.Argv[0], l.Argv[1:]...)
		cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = l.Env, l.Dir, l.Output, l.Output
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		go func() { reaped <- cmd.Wait() }()
		return cmd.Process.Pid, nil
	}})
	if launched.Dir != p.Dir || !strings.Contains(strings.Join(launched.Env, " "), MarkerEnv+"="+p.Dir) {
		t.Fatalf("launch spec %+v does not carry the work directory and marker", launched)
	}
	pid, err := p.WaitReady()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitProgress(2, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	res, err := p.Finish(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Passed() {
		t.Fatalf("%s\n%s", res.Status, p.Output())
	}
	select {
	case err := <-reaped:
		if err != nil {
			t.Fatalf("launcher's wait: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the workload did not exit after its result")
	}
	if err := p.Reap(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestFinishGone: a workload that dies without a result is reported at
// once, not after the whole finish timeout.
func TestFinishGone(t *testing.T) {
	s := Build(t)
	// Were the death not noticed, WaitResult would end in ErrTimeout.
	p := s.Start(t, "zdtm/umask", Opts{FinishTimeout: 2 * time.Minute})
	pid, err := p.WaitReady()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err = p.WaitResult(); !errors.Is(err, ErrGone) {
		t.Fatalf("WaitResult after SIGKILL: %v, want ErrGone", err)
	}
}

// TestLogCheckFails proves the progress-log check can fail: a line
// overwritten behind the workload's back (as a lost file offset would do)
// must turn its result into FAIL.
func TestLogCheckFails(t *testing.T) {
	s := Build(t)
	for name, args := range map[string][]string{
		"simple": nil,
		"gowork": {"--heap-mib=16"},
		"chain":  {fmt.Sprintf("--steps=%d", chainSteps)},
	} {
		t.Run(name, func(t *testing.T) {
			p := s.Start(t, name, Opts{Args: args})
			pid, err := p.WaitReady()
			if err != nil {
				t.Fatal(err)
			}
			if err := p.WaitProgress(3, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(p.Dir+"/progress.log", os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("overwritten"), 0); err != nil {
				t.Fatal(err)
			}
			f.Close()
			res, err := p.Finish(pid)
			if err != nil {
				t.Fatal(err)
			}
			if res.Passed() || !strings.Contains(res.Status, "progress.log") {
				t.Fatalf("after overwriting progress.log: %q, want a FAIL naming progress.log", res.Status)
			}
		})
	}
}
