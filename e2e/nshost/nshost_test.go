package nshost_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/migrated/migrated/e2e/nshost"
)

// testBinary is this test binary: the hosts run it as their helper programs.
func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// startHelper starts a helper of this test binary in h as a daemon.
func startHelper(t *testing.T, ctx context.Context, h *nshost.Host, mode string, socket string, args ...string) *nshost.Daemon {
	t.Helper()
	d, err := h.StartDaemon(ctx, nshost.DaemonSpec{
		Name:   mode,
		Path:   testBinary(t),
		Args:   args,
		Env:    append(os.Environ(), "NSHOST_TEST_HELPER="+mode, "TMPDIR="+h.TmpDir()),
		Socket: socket,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(time.Second) })
	return d
}

// echoPort is where the echo helper listens in every host.
const echoPort = 7007

// startEchoServers starts an echo server on every host and waits until each
// listens.
func startEchoServers(t *testing.T, ctx context.Context, c *nshost.Cluster) {
	t.Helper()
	for _, h := range c.Hosts {
		d := startHelper(t, ctx, h, "echo-server", "", fmt.Sprintf("%s:%d", h.Addr, echoPort))
		waitLog(t, d, "ready")
	}
}

// waitLog waits until the daemon's log holds s.
func waitLog(t *testing.T, d *nshost.Daemon, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(readFile(d.Log), s) {
		if time.Now().After(deadline) || d.Exited() {
			t.Fatalf("%s in host %s: no %q in its log: %q", d.Path, d.Host.Name, s, readFile(d.Log))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// echo sends a message from host from to the echo server of host to.
func echo(ctx context.Context, from, to *nshost.Host) error {
	msg := "from " + from.Name + " to " + to.Name
	cmd := from.Command(ctx, "/proc/self/exe")
	cmd.Path = os.Args[0]
	cmd.Args = []string{os.Args[0], fmt.Sprintf("%s:%d", to.Addr, echoPort), msg}
	cmd.Env = append(os.Environ(), "NSHOST_TEST_HELPER=dial")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != msg {
		return fmt.Errorf("echo from %s to %s: got %q", from.Name, to.Name, got)
	}
	return nil
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func TestHostsReachEachOther(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d hosts", n), func(t *testing.T) {
			c := nshost.NewForTest(t, n)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			startEchoServers(t, ctx, c)
			for _, a := range c.Hosts {
				for _, b := range c.Hosts {
					if a == b {
						continue
					}
					if err := echo(ctx, a, b); err != nil {
						t.Errorf("%s -> %s: %v", a.Name, b.Name, err)
					}
				}
			}
		})
	}
}

// TestNoRouteOut checks that a host reaches nothing but its peers: no
// default route, and the machine's loopback is not its loopback.
func TestNoRouteOut(t *testing.T) {
	c := nshost.NewForTest(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := c.Hosts[0].Command(ctx, "ip", "route", "show", "table", "all").CombinedOutput()
	if err != nil {
		t.Fatalf("ip route: %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "default") {
			t.Errorf("host has a default route: %s", line)
		}
	}
	if !strings.Contains(string(out), "198.18.0.2 dev to-b") {
		t.Errorf("no route to the peer:\n%s", out)
	}
}

func TestLinkDownUp(t *testing.T) {
	c := nshost.NewForTest(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	startEchoServers(t, ctx, c)
	a, b, x := c.Hosts[0], c.Hosts[1], c.Hosts[2]

	if err := c.LinkDown(a, b); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from, to *nshost.Host
		reach    bool
	}{
		{a, b, false}, {b, a, false},
		{a, x, true}, {x, a, true}, {b, x, true}, {x, b, true},
	} {
		err := echo(ctx, tc.from, tc.to)
		if (err == nil) != tc.reach {
			t.Errorf("link a-b down: %s -> %s: reachable=%v, want %v (%v)", tc.from.Name, tc.to.Name, err == nil, tc.reach, err)
		}
		// A link that is down fails fast, in the sender's kernel.
		if err != nil && !strings.Contains(err.Error(), "network is unreachable") {
			t.Errorf("%s -> %s: %v, want network is unreachable", tc.from.Name, tc.to.Name, err)
		}
	}

	if err := c.LinkUp(a, b); err != nil {
		t.Fatal(err)
	}
	// The kernel brings the veth back a little later: retry, bounded.
	deadline := time.Now().Add(10 * time.Second)
	for {
		errAB, errBA := echo(ctx, a, b), echo(ctx, b, a)
		if errAB == nil && errBA == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("link a-b up again, still unreachable: %v; %v", errAB, errBA)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startLine starts cmd and returns the first line it writes on stdout.
func startLine(t *testing.T, cmd *nshost.Cmd) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd.Stdout = w
	err = cmd.Start()
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatalf("first line of %v: %v", cmd.Args, err)
	}
	return strings.TrimSpace(line)
}

func TestPIDNamespaces(t *testing.T) {
	c := nshost.NewForTest(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := c.Hosts[0], c.Hosts[1]

	// A few processes in a, so that the last PID is one b has not used.
	var last *nshost.Cmd
	for range 4 {
		last = a.Command(ctx, "sleep", "60")
		if err := last.Start(); err != nil {
			t.Fatal(err)
		}
		cmd := last
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	p := last.Process
	ns, err := nshost.NSpid(p.RootPID)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{p.RootPID, p.PID}; !slices.Equal(ns, want) {
		t.Fatalf("NSpid of the sleep: %v, want %v", ns, want)
	}
	if p.PID == p.RootPID {
		t.Fatalf("inner and root pid are both %d", p.PID)
	}
	if rp, err := a.RootPID(p.PID); err != nil || rp != p.RootPID {
		t.Errorf("a.RootPID(%d) = %d, %v; want %d", p.PID, rp, err, p.RootPID)
	}
	if !a.HasPID(p.PID) {
		t.Errorf("host a does not list its own pid %d", p.PID)
	}
	// b sees none of a's processes.
	if b.HasPID(p.PID) {
		t.Fatalf("pid %d of host a is also taken in host b", p.PID)
	}
	if _, err := b.RootPID(p.PID); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("b.RootPID(%d): %v, want not exist", p.PID, err)
	}
	if err := b.Command(ctx, "kill", "-0", strconv.Itoa(p.PID)).Run(); err == nil {
		t.Errorf("kill -0 %d from host b reached host a's process", p.PID)
	}
	pids, err := b.PIDs()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(pids, p.PID) || !slices.Contains(pids, 1) {
		t.Errorf("pids of host b: %v", pids)
	}

	// Each host counts from its own first PID, as far apart as pid_max allows.
	if p.PID < a.FirstPID() || p.PID >= b.FirstPID() {
		t.Errorf("pid %d of host a outside [%d, %d)", p.PID, a.FirstPID(), b.FirstPID())
	}
	inB := b.Command(ctx, "true")
	if err := inB.Run(); err != nil {
		t.Fatal(err)
	}
	if inB.Process.PID < b.FirstPID() {
		t.Errorf("pid %d of host b below its first pid %d", inB.Process.PID, b.FirstPID())
	}

	// b can give the same PID to a process of its own, as a restore with
	// clone3(set_tid) would.
	take := b.Command(ctx, "sleep", "60")
	take.WantPID = p.PID
	if err := take.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { take.Process.Kill(); take.Wait() })
	if take.Process.PID != p.PID {
		t.Fatalf("host b gave pid %d, want %d", take.Process.PID, p.PID)
	}
	// Now the PID is taken in b.
	again := b.Command(ctx, "sleep", "60")
	again.WantPID = p.PID
	if err := again.Start(); !errors.Is(err, nshost.ErrPIDTaken) {
		t.Errorf("second task with pid %d in host b: %v, want ErrPIDTaken", p.PID, err)
		if err == nil {
			again.Process.Kill()
			again.Wait()
		}
	}
	rp, err := b.RootPID(p.PID)
	if err != nil {
		t.Fatal(err)
	}
	if rp == p.RootPID {
		t.Fatalf("both hosts' pid %d is root pid %d", p.PID, rp)
	}
	if ns, err := nshost.NSpid(rp); err != nil || !slices.Equal(ns, []int{rp, p.PID}) {
		t.Errorf("NSpid of b's process: %v, %v", ns, err)
	}
}

func TestPrivateMounts(t *testing.T) {
	c := nshost.NewForTest(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := c.Hosts[0], c.Hosts[1]
	shared := filepath.Join(t.TempDir(), "shared")
	probe := fmt.Sprintf("/run/nshost-probe-%d", os.Getpid())

	script := `echo "$1" > ` + probe + ` && echo "$1" > /dev/shm/probe && echo "$1" > "$2" && uname -n`
	out, err := a.Command(ctx, "sh", "-c", script, "sh", "written by a", shared).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "a" {
		t.Errorf("host name in a: %q", got)
	}
	if got := readFile(a.Path(probe)); got != "written by a\n" {
		t.Errorf("a's %s seen from the harness: %q", probe, got)
	}
	if got := readFile(shared); got != "written by a\n" {
		t.Errorf("shared file written in a: %q", got)
	}
	if _, err := os.Stat(probe); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a's %s appeared on the machine: %v", probe, err)
	}
	for _, tc := range []struct {
		path  string
		exist bool
	}{
		{probe, false},
		{"/dev/shm/probe", false},
		{shared, true},
		{"/proc/1/comm", true},
	} {
		err := b.Command(ctx, "test", "-e", tc.path).Run()
		if (err == nil) != tc.exist {
			t.Errorf("in host b, %s exists=%v, want %v", tc.path, err == nil, tc.exist)
		}
	}
	// The hosts know each other by name; the machine's /etc/hosts is untouched.
	out, err = a.Command(ctx, "getent", "hosts", "b").Output()
	if err != nil || !strings.HasPrefix(string(out), b.Addr.String()+" ") {
		t.Errorf("host b seen from host a: %q, %v", out, err)
	}
	if etc := readFile("/etc/hosts"); strings.Contains(etc, "198.18.0.") {
		t.Errorf("the machine's /etc/hosts names the hosts:\n%s", etc)
	}
	// b's /proc is b's: its PID 1 is b's init.
	comm := readFile(b.Path("/proc/1/cmdline"))
	if !strings.HasPrefix(comm, "nshost-init-b") {
		t.Errorf("pid 1 of host b: %q", comm)
	}
	out, err = b.Command(ctx, "cat", "/proc/1/cmdline").Output()
	if err != nil || !strings.HasPrefix(string(out), "nshost-init-b") {
		t.Errorf("pid 1 seen inside host b: %q, %v", out, err)
	}
}

func TestCommand(t *testing.T) {
	c := nshost.NewForTest(t, 2)
	h := c.Hosts[0]
	for _, tc := range []struct {
		name     string
		argv     []string
		stdin    string
		timeout  time.Duration
		wantOut  string
		wantCode int // -1: killed by a signal
	}{
		{"output", []string{"echo", "hello"}, "", 10 * time.Second, "hello\n", 0},
		{"stdin", []string{"cat"}, "through a pipe", 10 * time.Second, "through a pipe", 0},
		{"exit status", []string{"sh", "-c", "echo out; exit 3"}, "", 10 * time.Second, "out\n", 3},
		{"env", []string{"sh", "-c", `echo "$TMPDIR"`}, "", 10 * time.Second, h.TmpDir() + "\n", 0},
		{"context kills", []string{"sleep", "60"}, "", 200 * time.Millisecond, "", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			cmd := h.Command(ctx, tc.argv[0], tc.argv[1:]...)
			if tc.stdin != "" {
				cmd.Stdin = strings.NewReader(tc.stdin)
			}
			start := time.Now()
			out, err := cmd.Output()
			code := 0
			var ee *nshost.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.wantOut || code != tc.wantCode {
				t.Errorf("got %q, code %d; want %q, code %d", out, code, tc.wantOut, tc.wantCode)
			}
			if tc.wantCode == -1 && time.Since(start) > 10*time.Second {
				t.Errorf("killed by its context only after %v", time.Since(start))
			}
		})
	}
	t.Run("not found", func(t *testing.T) {
		err := h.Command(context.Background(), "no-such-program-nshost").Run()
		if !errors.Is(err, exec.ErrNotFound) {
			t.Errorf("got %v, want exec.ErrNotFound", err)
		}
		err = h.Command(context.Background(), "/no/such/program").Run()
		if err == nil || !strings.Contains(err.Error(), "no such file") {
			t.Errorf("got %v, want no such file", err)
		}
	})
	t.Run("size", func(t *testing.T) {
		big := strings.Repeat("y", 120<<10) // just under MAX_ARG_STRLEN
		out, err := h.Command(context.Background(), "sh", "-c", `printf %s "$1" | wc -c`, "sh", big).Output()
		if err != nil || strings.TrimSpace(string(out)) != strconv.Itoa(len(big)) {
			t.Errorf("120 KiB argument: %q, %v", out, err)
		}
		cmd := h.Command(context.Background(), "true")
		cmd.Env = []string{"HUGE=" + strings.Repeat("z", 300<<10)}
		if err := cmd.Run(); err == nil || !strings.Contains(err.Error(), "more than") {
			t.Errorf("300 KiB environment: %v, want a size error", err)
		}
	})
	t.Run("credential", func(t *testing.T) {
		cmd := h.Command(context.Background(), "sh", "-c", "id -u; id -g; id -G")
		cmd.Credential = &syscall.Credential{Uid: 65534, Gid: 65533, Groups: []uint32{65532}}
		cmd.Dir = "/"
		out, err := cmd.Output()
		if got, want := strings.Fields(string(out)), []string{"65534", "65533", "65533", "65532"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("ids: %q, %v; want %v", got, err, want)
		}
	})
	t.Run("signal", func(t *testing.T) {
		cmd := h.Command(context.Background(), "sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		var ee *nshost.ExitError
		if err := cmd.Wait(); !errors.As(err, &ee) || ee.Status.Signal() != syscall.SIGTERM {
			t.Errorf("wait: %v, want SIGTERM", err)
		}
		if err := cmd.Process.Kill(); !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("kill after wait: %v, want ErrProcessDone", err)
		}
	})
}

func TestDaemon(t *testing.T) {
	c := nshost.NewForTest(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := c.Hosts[0], c.Hosts[1]
	const sock = "/run/nshost-test/helper.sock"
	d := startHelper(t, ctx, a, "unix-listen", sock, sock)
	// The socket accepts before the helper has logged that it does.
	waitLog(t, d, "listening on "+sock)
	// The socket is in a's /run only.
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if err := b.WaitSocket(short, sock); err == nil {
		t.Errorf("host b sees host a's %s", sock)
	}
	if err := a.WaitSocket(ctx, sock); err != nil {
		t.Errorf("wait for a's socket again: %v", err)
	}
	if err := d.Stop(5 * time.Second); err != nil {
		t.Errorf("stop: %v", err)
	}
	if !strings.Contains(readFile(d.Log), "terminated") {
		t.Errorf("no graceful stop in the log: %q", readFile(d.Log))
	}

	// A daemon that dies before its socket appears fails fast, with its log.
	start := time.Now()
	_, err := a.StartDaemon(ctx, nshost.DaemonSpec{
		Name: "dies", Path: "sh", Args: []string{"-c", "echo cannot start >&2; exit 1"},
		Socket: "/run/never.sock", ReadyTimeout: 20 * time.Second,
	})
	if err == nil || !strings.Contains(err.Error(), "cannot start") {
		t.Errorf("got %v, want an error quoting the log", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("took %v to notice the daemon exited", time.Since(start))
	}
}

func TestKillHost(t *testing.T) {
	c := nshost.NewForTest(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := c.Hosts[0], c.Hosts[1]
	inA := a.Command(ctx, "sleep", "60")
	inB := b.Command(ctx, "sleep", "60")
	for _, cmd := range []*nshost.Cmd{inA, inB} {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { inB.Process.Kill(); inB.Wait() })
	startEchoServers(t, ctx, c)
	if err := echo(ctx, b, a); err != nil {
		t.Fatal(err)
	}
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := inA.Wait(); !errors.Is(err, nshost.ErrHostDown) {
		t.Errorf("wait for a process of the killed host: %v, want ErrHostDown", err)
	}
	if err := syscall.Kill(inA.Process.RootPID, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process of the killed host: kill -0: %v", err)
	}
	if inB.Exited() {
		t.Errorf("the process in host b died with host a")
	}
	if err := a.Command(ctx, "true").Run(); !errors.Is(err, nshost.ErrHostDown) {
		t.Errorf("command in the killed host: %v, want ErrHostDown", err)
	}
	if err := b.Command(ctx, "true").Run(); err != nil {
		t.Errorf("command in host b: %v", err)
	}
	// A dead host is silent: no reset, no unreachable from its kernel.
	if err := echo(ctx, b, a); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("echo to the killed host: %v, want a timeout", err)
	}
}

func TestCloseLeavesNothing(t *testing.T) {
	skipUnlessHosts(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := nshost.New(ctx, nshost.Config{Hosts: 3})
	if err != nil {
		t.Fatal(err)
	}
	var rootPIDs []int
	for _, h := range c.Hosts {
		cmd := h.Command(ctx, "sleep", "60")
		if err := cmd.Start(); err != nil {
			c.Close()
			t.Fatal(err)
		}
		rootPIDs = append(rootPIDs, h.InitPID(), cmd.Process.RootPID)
	}
	dir := c.Dir()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range rootPIDs {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pid %d survived Close: %v", pid, err)
		}
	}
	for _, h := range c.Hosts {
		if _, err := os.Lstat(filepath.Join("/run/netns", h.NetNS)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("netns %s survived Close: %v", h.NetNS, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("work directory %s survived Close: %v", dir, err)
	}
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), ": to-") {
		t.Errorf("a host link is in the machine's namespace:\n%s", out)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestRemoveStale(t *testing.T) {
	skipUnlessHosts(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// What a crashed run leaves: a named namespace nobody is in.
	stale := fmt.Sprintf("nshost-0-%06x-a", os.Getpid()&0xffffff)
	if out, err := exec.Command("ip", "netns", "add", stale).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", stale).Run() })
	// A cluster of a run still alive must survive another run's start.
	live := nshost.NewForTest(t, 2)
	other := nshost.NewForTest(t, 2) // runs RemoveStale again
	if _, err := os.Lstat(filepath.Join("/run/netns", stale)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale netns %s not removed: %v", stale, err)
	}
	for _, h := range append(live.Hosts, other.Hosts...) {
		if err := h.Command(ctx, "true").Run(); err != nil {
			t.Errorf("host %s (%s) after another run started: %v", h.Name, h.NetNS, err)
		}
	}
}

func TestPartitionHeal(t *testing.T) {
	c := nshost.NewForTest(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	startEchoServers(t, ctx, c)
	a, b, x := c.Hosts[0], c.Hosts[1], c.Hosts[2]
	// Resolve the neighbours first: Partition must also cut a link that
	// already carried traffic.
	if err := echo(ctx, a, b); err != nil {
		t.Fatal(err)
	}
	if err := c.Partition(a, b); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from, to *nshost.Host
		reach    bool
	}{
		{a, b, false}, {b, a, false}, {a, x, true}, {x, b, true},
	} {
		err := echo(ctx, tc.from, tc.to)
		if (err == nil) != tc.reach {
			t.Errorf("a-b partitioned: %s -> %s: reachable=%v, want %v (%v)", tc.from.Name, tc.to.Name, err == nil, tc.reach, err)
		}
		// A partition is silence, not an error from the sender's kernel.
		if err != nil && !strings.Contains(err.Error(), "timeout") {
			t.Errorf("%s -> %s: %v, want a timeout", tc.from.Name, tc.to.Name, err)
		}
	}
	if err := c.Heal(a, b); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		errAB, errBA := echo(ctx, a, b), echo(ctx, b, a)
		if errAB == nil && errBA == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healed, still unreachable: %v; %v", errAB, errBA)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSignalByInnerPID(t *testing.T) {
	c := nshost.NewForTest(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := c.Hosts[0], c.Hosts[1]
	// A process the harness did not start: a child of a shell in host a.
	sh := a.Command(ctx, "sh", "-c", "sleep 60 & echo $!; wait")
	pid, err := strconv.Atoi(startLine(t, sh))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Process.Kill(); sh.Wait() })
	if !b.HasPID(pid) {
		if err := b.Signal(pid, syscall.SIGKILL); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("signal in host b to host a's pid %d: %v, want not exist", pid, err)
		}
	}
	if !a.HasPID(pid) {
		t.Fatalf("host a lost pid %d to a signal sent in host b", pid)
	}
	if err := a.Signal(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitGone(ctx, pid); err != nil {
		t.Fatal(err)
	}
	if err := sh.Wait(); err != nil {
		t.Errorf("the shell: %v", err)
	}
	if err := a.Signal(pid, syscall.SIGKILL); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("signal to a gone pid: %v, want not exist", err)
	}
}

func TestStartDaemons(t *testing.T) {
	c := nshost.NewForTest(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const sock = "/run/agent/agent.sock"
	logs := t.TempDir()
	ds, err := c.StartDaemons(ctx, func(h *nshost.Host) nshost.DaemonSpec {
		return nshost.DaemonSpec{
			Name: "agent", Path: testBinary(t), Args: []string{sock},
			Env:    append(os.Environ(), "NSHOST_TEST_HELPER=unix-listen"),
			LogDir: logs, Socket: sock,
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range ds {
		h := c.Hosts[i]
		if d.Host != h || d.Log != filepath.Join(logs, h.Name+"-agent.log") {
			t.Errorf("daemon %d: host %s, log %s", i, d.Host.Name, d.Log)
		}
		if err := h.WaitSocket(ctx, sock); err != nil {
			t.Errorf("socket in host %s: %v", h.Name, err)
		}
		if err := d.Stop(5 * time.Second); err != nil {
			t.Errorf("stop in host %s: %v", h.Name, err)
		}
	}
}

// TestHarnessCrash kills a harness that never called Close: its hosts and
// every process in them must die with it, and the next New removes its
// namespaces.
func TestHarnessCrash(t *testing.T) {
	skipUnlessHosts(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testBinary(t), t.TempDir())
	// Its socket directory goes into TMPDIR: into this test's, removed
	// with it, since the crashed harness cannot remove it.
	cmd.Env = append(os.Environ(), "NSHOST_TEST_HELPER=harness", "TMPDIR="+t.TempDir())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var netns []string
	var pids []int
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "ready" {
		kind, v, _ := strings.Cut(sc.Text(), " ")
		switch kind {
		case "netns":
			netns = append(netns, v)
		case "pid":
			n, _ := strconv.Atoi(v)
			pids = append(pids, n)
		}
	}
	if len(netns) != 2 || len(pids) != 4 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("harness reported netns %v, pids %v", netns, pids)
	}
	cmd.Process.Kill()
	cmd.Wait()

	for _, pid := range pids {
		for !dead(pid) {
			if ctx.Err() != nil {
				t.Fatalf("pid %d outlived its crashed harness", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := nshost.RemoveStale(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ns := range netns {
		if _, err := os.Lstat(filepath.Join("/run/netns", ns)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("netns %s of the crashed harness left: %v", ns, err)
		}
	}
}

// dead reports whether pid is gone or a zombie (dead, not yet reaped by the
// machine's init, which reaps lazily here).
func dead(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z'
}

// clone3SetTID is a Python program that creates a child with clone3 and
// set_tid = argv[1] in the caller's PID namespace (what a restore does to
// keep a task's PID), then prints the child's PID or the errno.
const clone3SetTID = `
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
tid = (ctypes.c_int32 * 1)(int(sys.argv[1]))
# struct clone_args: flags pidfd child_tid parent_tid exit_signal stack
# stack_size tls set_tid set_tid_size cgroup (linux/sched.h, CLONE_ARGS_SIZE_VER2)
args = ctypes.create_string_buffer(struct.pack("=11Q", 0, 0, 0, 0, 17, 0, 0, 0, ctypes.addressof(tid), 1, 0), 88)
pid = libc.syscall(ctypes.c_long(435), args, ctypes.c_size_t(88))  # __NR_clone3
if pid == 0:
    os._exit(0)
if pid < 0:
    print("errno", ctypes.get_errno())
    sys.exit(0)
os.waitpid(pid, 0)
print(pid)
`

// TestRestoreCanKeepPID creates, in host b, a task with the PID a task has
// in host a, with clone3(set_tid) as the restore does.
func TestRestoreCanKeepPID(t *testing.T) {
	// Debian's python3 rather than a version manager's shim that may come
	// first in PATH and take seconds to start.
	python, err := exec.LookPath("/usr/bin/python3")
	if err != nil {
		if python, err = exec.LookPath("python3"); err != nil {
			t.Skip("needs python3 (Debian package python3)")
		}
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("the clone3 program is written for amd64")
	}
	c := nshost.NewForTest(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := c.Hosts[0], c.Hosts[1]
	task := a.Command(ctx, "sleep", "60")
	if err := task.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { task.Process.Kill(); task.Wait() })
	for _, tc := range []struct {
		name string
		pid  int
		want string
	}{
		{"pid of host a's task", task.Process.PID, strconv.Itoa(task.Process.PID)},
		{"pid taken in host b", 1, fmt.Sprintf("errno %d", syscall.EEXIST)},
	} {
		out, err := b.Command(ctx, python, "-c", clone3SetTID, strconv.Itoa(tc.pid)).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", tc.name, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("%s: clone3 with set_tid %d in host b: %q, want %q", tc.name, tc.pid, got, tc.want)
		}
	}
}

// TestPtraceWithinHost: a program in a host can seize the host's tasks, as
// the agent does, and cannot even name another host's.
func TestPtraceWithinHost(t *testing.T) {
	c := nshost.NewForTest(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := c.Hosts[0], c.Hosts[1]
	task := a.Command(ctx, "sleep", "60")
	if err := task.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { task.Process.Kill(); task.Wait() })
	pid := strconv.Itoa(task.Process.PID)
	seize := func(h *nshost.Host) (string, error) {
		cmd := h.Command(ctx, testBinary(t), pid)
		cmd.Env = append(os.Environ(), "NSHOST_TEST_HELPER=seize")
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := seize(a); err != nil || out != "seized "+pid {
		t.Errorf("seize in host a: %q, %v", out, err)
	}
	if task.Exited() {
		t.Fatalf("the task died of being seized")
	}
	if b.HasPID(task.Process.PID) {
		t.Fatalf("pid %s is in use in host b too", pid)
	}
	if out, err := seize(b); err == nil || !strings.Contains(out, "no such process") {
		t.Errorf("seize in host b: %q, %v; want no such process", out, err)
	}
}

// TestLinkCounters: what one host sends to another shows on exactly their
// link, and an idle link stays quiet.
func TestLinkCounters(t *testing.T) {
	c := nshost.NewForTest(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b, x := c.Hosts[0], c.Hosts[1], c.Hosts[2]
	startEchoServers(t, ctx, c)
	before := map[[2]*nshost.Host]nshost.LinkStats{}
	pairs := [][2]*nshost.Host{{a, b}, {b, a}, {a, x}, {x, a}, {b, x}, {x, b}}
	for _, p := range pairs {
		st, err := c.Link(p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		before[p] = st
	}
	const size = 100 << 10 // one argument: at most 128 KiB (MAX_ARG_STRLEN)
	cmd := a.Command(ctx, testBinary(t), fmt.Sprintf("%s:%d", b.Addr, echoPort), strings.Repeat("x", size))
	cmd.Env = append(os.Environ(), "NSHOST_TEST_HELPER=dial")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out[:min(len(out), 200)])
	}
	for _, p := range pairs {
		st, err := c.Link(p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		sent := st.TxBytes - before[p].TxBytes
		switch {
		case p == [2]*nshost.Host{a, b} || p == [2]*nshost.Host{b, a}:
			// The message went each way once: its bytes plus headers.
			if sent < size || sent > 2*size {
				t.Errorf("%s sent %d bytes to %s for a %d-byte echo", p[0].Name, sent, p[1].Name, size)
			}
		case sent > 4096:
			t.Errorf("idle link %s-%s carried %d bytes", p[0].Name, p[1].Name, sent)
		}
	}
}

// skipUnlessHosts skips tests that build hosts without NewForTest, as
// NewForTest would.
func skipUnlessHosts(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("namespace hosts are end-to-end: skipped with -short")
	}
	if reason := nshost.Unavailable(); reason != "" {
		t.Skip(reason)
	}
}
