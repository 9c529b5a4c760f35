package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/compat"
	"github.com/migrated/migrated/image"
)

// The test binary doubles as a control API client run as another uid:
// with MIGRATED_AGENT_TEST_CLIENT=socket and MIGRATED_AGENT_TEST_PID=pid it
// asks GET /v1/proc/{pid} and exits 0 (allowed), 4 (not permitted),
// 5 (not found) or 1.
func TestMain(m *testing.M) {
	if sock := os.Getenv("MIGRATED_AGENT_TEST_CLIENT"); sock != "" {
		var p ProcInfo
		err := NewClient(sock).Get(context.Background(), "/v1/proc/"+os.Getenv("MIGRATED_AGENT_TEST_PID"), &p)
		switch {
		case err == nil:
			fmt.Printf("uid %d pid %d name %s\n", os.Getuid(), p.PID, p.Name)
			os.Exit(0)
		case errors.Is(err, ErrNotPermitted):
			fmt.Println(err)
			os.Exit(4)
		case errors.Is(err, ErrNotFound):
			fmt.Println(err)
			os.Exit(5)
		}
		fmt.Println(err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

const nobody = 65534

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run processes as uid 65534")
	}
}

// sleeperAs starts `sleep 60` as uid and returns its pid.
func sleeperAs(t *testing.T, uid uint32) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

func TestAuthorizePID(t *testing.T) {
	needRoot(t)
	theirs := sleeperAs(t, nobody)
	mine := os.Getpid()
	gone := exec.Command("true")
	gone.Run()
	tests := []struct {
		name string
		uid  uint32
		pid  int
		want error
	}{
		{"root on anyone", 0, theirs, nil},
		{"root on itself", 0, mine, nil},
		{"owner", nobody, theirs, nil},
		{"other uid on root's", nobody, mine, ErrNotPermitted},
		{"third uid on nobody's", 1000, theirs, ErrNotPermitted},
		{"no such pid", 0, gone.Process.Pid, ErrNotFound},
		{"pid 0", 0, 0, ErrBadRequest},
		{"negative pid", nobody, -1, ErrBadRequest},
	}
	for _, tt := range tests {
		err := AuthorizePID(unix.Ucred{Pid: 1, Uid: tt.uid, Gid: tt.uid}, tt.pid)
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

// freeUDPPort returns a UDP port free on 127.0.0.1 right now.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// startAgent runs an in-process agent with its control socket in dir.
func startAgent(t *testing.T, dir, name string, opts ...func(*Options)) *Agent {
	t.Helper()
	o := DefaultOptions()
	o.Name = name
	o.Bind = "127.0.0.1:0"
	o.QUICPort = freeUDPPort(t)
	o.Insecure = true
	o.Gossip = "local"
	o.Control = filepath.Join(dir, name+".sock")
	for _, f := range opts {
		f(&o)
	}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a, err := New(o, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("agent %s: %v", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("agent %s did not stop", name)
		}
		if _, err := os.Stat(o.Control); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("control socket left behind: %v", err)
		}
	})
	select {
	case <-a.Ready():
	case err := <-errc:
		t.Fatalf("agent %s: %v", name, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("agent %s not ready", name)
	}
	return a
}

// worldDir is a temporary directory another uid can enter.
func worldDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "agent-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestControlPeerCred: a real second uid, through the real socket, may
// look at its own process and not at root's.
func TestControlPeerCred(t *testing.T) {
	needRoot(t)
	dir := worldDir(t)
	a := startAgent(t, dir, "peercred")
	theirs := sleeperAs(t, nobody)

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "agent.test")
	copyFile(t, self, bin, 0o755)

	run := func(uid uint32, pid int) (int, string) {
		cmd := exec.Command(bin)
		cmd.Env = []string{"MIGRATED_AGENT_TEST_CLIENT=" + a.Options().Control, "MIGRATED_AGENT_TEST_PID=" + strconv.Itoa(pid)}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	tests := []struct {
		name string
		uid  uint32
		pid  int
		want int
	}{
		{"nobody on its own process", nobody, theirs, 0},
		{"nobody on root's process", nobody, os.Getpid(), 4},
		{"nobody on pid 1", nobody, 1, 4},
		{"root on nobody's process", 0, theirs, 0},
		{"root on a missing process", 0, 1 << 30, 5},
	}
	for _, tt := range tests {
		if code, out := run(tt.uid, tt.pid); code != tt.want {
			t.Errorf("%s: exit %d, want %d: %s", tt.name, code, tt.want, out)
		}
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// An endpoint registered from another file (this one) is served.
func init() {
	RegisterEndpoint("GET /v1/test/echo/{word}", func(a *Agent, r *http.Request) (any, error) {
		if r.PathValue("word") == "conflict" {
			return nil, fmt.Errorf("%w: echo", ErrConflict)
		}
		cred, _ := PeerCred(r.Context())
		return map[string]any{"word": r.PathValue("word"), "uid": cred.Uid, "node": a.Options().Name}, nil
	})
}

func TestControlAPI(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, dir, "api")
	c := NewClient(a.Options().Control)
	ctx := context.Background()

	var echo map[string]any
	if err := c.Get(ctx, "/v1/test/echo/hello", &echo); err != nil {
		t.Fatal(err)
	}
	if echo["word"] != "hello" || echo["uid"] != float64(os.Getuid()) || echo["node"] != "api" {
		t.Errorf("echo %v", echo)
	}
	if err := c.Get(ctx, "/v1/test/echo/conflict", nil); !errors.Is(err, ErrConflict) {
		t.Errorf("conflict: %v", err)
	}
	if err := c.Get(ctx, "/v1/nothing", nil); err == nil {
		t.Error("unknown path answered")
	}
	var ms []struct{ Name, Status string }
	if err := c.Get(ctx, "/v1/members", &ms); err != nil || len(ms) != 1 || ms[0].Name != "api" {
		t.Errorf("members %v %v", ms, err)
	}
	var caps CapsInfo
	if err := c.Get(ctx, "/v1/caps", &caps); err != nil || caps.Caps.PageSize != uint64(os.Getpagesize()) {
		t.Errorf("caps %+v %v", caps, err)
	}
	var p ProcInfo
	if err := c.Get(ctx, fmt.Sprintf("/v1/proc/%d", os.Getpid()), &p); err != nil || p.PID != os.Getpid() || p.Threads < 1 {
		t.Errorf("proc %+v %v", p, err)
	}
	if err := c.Get(ctx, "/v1/proc/x", nil); !errors.Is(err, ErrBadRequest) {
		t.Errorf("bad pid: %v", err)
	}

	// A second agent on the same socket is refused.
	o := a.Options()
	o.Name, o.Bind, o.QUICPort = "second", "127.0.0.1:0", freeUDPPort(t)
	b, err := New(o, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Run(context.Background()); !errors.Is(err, ErrAgentRunning) {
		t.Errorf("second agent on the same socket: %v", err)
	}

	// No agent: the error names the socket.
	missing := filepath.Join(dir, "missing.sock")
	err = NewClient(missing).Get(ctx, "/v1/version", nil)
	if !errors.Is(err, ErrAgentNotRunning) || !strings.Contains(err.Error(), missing) {
		t.Errorf("no agent: %v", err)
	}
}

func containsString(s, sub string) bool {
	return len(sub) > 0 && len(s) >= len(sub) && indexOf(s, sub) >= 0
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		quic string
		ok   bool
	}{
		{"ip only", Options{Bind: "10.0.0.1"}, "10.0.0.1:7947", true},
		{"ip port", Options{Bind: "127.0.0.2:9000"}, "127.0.0.2:9001", true},
		{"quic port", Options{Bind: "127.0.0.2:9000", QUICPort: 4433}, "127.0.0.2:4433", true},
		{"advertise", Options{Bind: "0.0.0.0:9000", Advertise: "192.168.1.5"}, "192.168.1.5:9001", true},
		{"ipv6", Options{Bind: "[fd00::1]:9000"}, "[fd00::1]:9001", true},
		{"no bind", Options{}, "", false},
		{"hostname", Options{Bind: "example:1"}, "", false},
		{"port 0 without quic port", Options{Bind: "127.0.0.1:0"}, "", false},
		{"bad quic port", Options{Bind: "127.0.0.1", QUICPort: 70000}, "", false},
	}
	for _, tt := range tests {
		_, _, quic, err := tt.o.addrs()
		if (err == nil) != tt.ok || tt.ok && quic.String() != tt.quic {
			t.Errorf("%s: quic %v err %v; want %s ok=%v", tt.name, quic, err, tt.quic, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrOptions) {
			t.Errorf("%s: %v does not wrap ErrOptions", tt.name, err)
		}
	}
	for _, o := range []Options{
		{Name: "x", Bind: "127.0.0.1"},                                      // no secret
		{Name: "x", Bind: "127.0.0.1", Insecure: true, SecretFile: "/x"},    // both
		{Name: "", Bind: "127.0.0.1", Insecure: true},                       // no name
		{Name: "x", Bind: "0.0.0.0", Insecure: true},                        // unreachable address
		{Name: "x", Bind: "127.0.0.1", Insecure: true, CapsOverride: "/no"}, // missing override
	} {
		if _, err := New(o, slog.New(slog.DiscardHandler)); !errors.Is(err, ErrOptions) {
			t.Errorf("New(%+v): %v, want ErrOptions", o, err)
		}
	}
}

func TestCapsOverride(t *testing.T) {
	h := &compat.HostCaps{PageSize: 4096, Compat32: true, HWCap: 7}
	path := filepath.Join(t.TempDir(), "caps.json")
	os.WriteFile(path, []byte(`{"compat32": false, "page_size": 65536}`), 0o644)
	if err := overrideCaps(h, path); err != nil {
		t.Fatal(err)
	}
	if h.Compat32 || h.PageSize != 65536 || h.HWCap != 7 {
		t.Errorf("override gave %+v", h)
	}
	os.WriteFile(path, []byte(`{"compat_32": false}`), 0o644)
	if err := overrideCaps(h, path); !errors.Is(err, ErrOptions) {
		t.Errorf("unknown key: %v", err)
	}
}

func TestDoctor(t *testing.T) {
	full := &compat.HostCaps{PageSize: 4096, Compat32: true, DirtyTrackers: []string{"uffd-wp", "hash"},
		TimeNS: true, Clone3SetTID: true, CapSysResource: true, CapCheckpointRestore: true,
		VDSO: testVDSO}
	tests := []struct {
		name     string
		mutate   func(*compat.HostCaps)
		check    string
		status   string
		reportOK bool
	}{
		{"all there", func(*compat.HostCaps) {}, "32-bit tasks", CheckOK, true},
		{"no compat", func(h *compat.HostCaps) { h.Compat32 = false }, "32-bit tasks", CheckMissing, true},
		{"hash only", func(h *compat.HostCaps) { h.DirtyTrackers = []string{"hash"} }, "dirty tracking: kernel-assisted", CheckMissing, true},
		{"no vdso", func(h *compat.HostCaps) { h.VDSO = nil }, "vDSO identity", CheckError, false},
		{"no cap_sys_resource", func(h *compat.HostCaps) { h.CapSysResource = false }, "CAP_SYS_RESOURCE", CheckMissing, true},
		{"no checkpoint_restore", func(h *compat.HostCaps) { h.CapCheckpointRestore = false }, "CAP_CHECKPOINT_RESTORE", CheckError, false},
	}
	for _, tt := range tests {
		h := *full
		tt.mutate(&h)
		r := Doctor(&h, compat.ProbeNotes{})
		found := false
		for _, c := range r.Checks {
			if c.Name == tt.check {
				found = true
				if c.Status != tt.status {
					t.Errorf("%s: %s is %s, want %s", tt.name, c.Name, c.Status, tt.status)
				}
				if c.Status != CheckOK && c.Cost == "" {
					t.Errorf("%s: %s missing without a cost", tt.name, c.Name)
				}
			}
		}
		if !found {
			t.Errorf("%s: no check %q", tt.name, tt.check)
		}
		if r.OK() != tt.reportOK {
			t.Errorf("%s: OK() = %v", tt.name, r.OK())
		}
	}
}

func FuzzParseProcStatus(f *testing.F) {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("Name:\tsleep\nState:\tS (sleeping)\nUid:\t65534\t65534\t65534\t65534\nThreads:\t1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseProcStatus(1, b)
		if err == nil && p.PID != 1 {
			t.Fatal("pid changed")
		}
	})
}

var testVDSO = &image.VDSOIdentity{Sha256: make([]byte, 32), VdsoSize: 8192}

func TestMetricsEndpoint(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	a := startAgent(t, t.TempDir(), "metrics", func(o *Options) { o.Metrics = addr })
	if err := NewClient(a.Options().Control).Get(context.Background(), "/v1/members", nil); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`migrated_cluster_members{state="alive"} 1`,
		`migrated_control_requests_total{pattern="GET /v1/members",status="200"} 1`,
		`migrated_managed_tasks 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
