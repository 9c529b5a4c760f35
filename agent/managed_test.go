package agent

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/migrated/migrated/rebalance"
)

var procStatCases = []struct {
	name    string
	in      string
	want    ProcStat
	wantErr bool
}{
	{"plain", "42 (busy) R 1 42 42 0 -1 4194304 100 0 0 0 250 13 0 0 20 0 3 0 100 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0",
		ProcStat{State: 'R', UTime: 250, STime: 13, Threads: 3}, false},
	{"niced", "42 (busy) R 1 42 42 0 -1 4194304 100 0 0 0 250 13 0 0 30 10 1 0 100 1000 10",
		ProcStat{State: 'R', UTime: 250, STime: 13, Threads: 1, Nice: 10}, false},
	{"bad nice", "42 (busy) R 1 42 42 0 -1 4194304 100 0 0 0 250 13 0 0 30 99 1 0 100 1000 10", ProcStat{}, true},
	{"name with spaces and parens", "7 (a) b (c)) S 1 7 7 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 1 1",
		ProcStat{State: 'S', UTime: 5, STime: 6, Threads: 1}, false},
	{"no paren", "7 a S 1", ProcStat{}, true},
	{"short", "7 (a) S 1 2 3", ProcStat{}, true},
	{"bad utime", "7 (a) S 1 7 7 0 -1 0 0 0 0 0 x 6 0 0 20 0 1 0 1", ProcStat{}, true},
	{"negative threads", "7 (a) S 1 7 7 0 -1 0 0 0 0 0 5 6 0 0 20 0 -1 0 1", ProcStat{}, true},
	{"empty", "", ProcStat{}, true},
}

func TestManagedParseProcStat(t *testing.T) {
	for _, c := range procStatCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseProcStat([]byte(c.in))
			if (err != nil) != c.wantErr {
				t.Fatalf("err %v, want error %v", err, c.wantErr)
			}
			if err != nil && !errors.Is(err, ErrProcFormat) {
				t.Errorf("err %v is not ErrProcFormat", err)
			}
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
	// Our own stat parses.
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip(err)
	}
	if st, err := ParseProcStat(b); err != nil || st.Threads < 1 {
		t.Errorf("/proc/self/stat: %+v %v", st, err)
	}
}

func FuzzParseProcStat(f *testing.F) {
	for _, c := range procStatCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseProcStat(b)
		if err == nil && st.Threads < 0 {
			t.Errorf("negative threads %+v", st)
		}
		_, _ = ParseStatmRSS(b, 4096)
	})
}

func TestManagedParseStatm(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
		err  bool
	}{
		{"1000 200 30 4 0 50 0\n", 200 * 4096, false},
		{"1000", 0, true},
		{"1000 x", 0, true},
		{"1 99999999999999999", 0, true},
	} {
		got, err := ParseStatmRSS([]byte(c.in), 4096)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%q: %d %v, want %d error %v", c.in, got, err, c.want, c.err)
		}
	}
}

var peerSecret = []byte("0123456789abcdef0123456789abcdef")

func TestManagedPeerEnvelope(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	good, err := sealPeer(peerSecret, peerRequest{Op: "status", From: "a"}, now)
	if err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte{}, good...)
	tampered[len(`{"body":{"op":"`)] ^= 1
	for _, c := range []struct {
		name   string
		secret []byte
		line   []byte
		at     time.Time
		want   error
	}{
		{"good", peerSecret, good, now, nil},
		{"other secret", []byte("x"), good, now, ErrPeerAuth},
		{"tampered", peerSecret, tampered, now, ErrPeerAuth},
		{"too old (replay)", peerSecret, good, now.Add(time.Minute), ErrPeerAuth},
		{"from the future", peerSecret, good, now.Add(-time.Minute), ErrPeerAuth},
		{"not json", peerSecret, []byte("hello\n"), now, ErrBadRequest},
		{"insecure", nil, good, now.Add(time.Hour), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var req peerRequest
			err := OpenPeer(c.secret, c.line, c.at, &req)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
			if err == nil && (req.Op != "status" || req.From != "a") {
				t.Errorf("decoded %+v", req)
			}
		})
	}
}

func FuzzOpenPeer(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	b, _ := sealPeer(peerSecret, peerRequest{Op: "admit", From: "a", Task: &rebalance.Task{ID: "t", CPU: 1}}, now)
	f.Add(b)
	b, _ = sealPeer(nil, peerAnswer{OK: true, Load: 1.5}, now)
	f.Add(b)
	f.Add([]byte(`{"body":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req peerRequest
		_ = OpenPeer(nil, b, now, &req)
		_ = OpenPeer(peerSecret, b, now, &req)
	})
}

// TestManagedRunAdoptList starts a real CPU-bound task through the agent,
// sees its CPU share and RSS, refuses to manage it twice, and finds it in
// the rebalancing snapshot with its manifest.
func TestManagedRunAdoptList(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, dir, "m1")
	c := NewClient(a.Options().Control)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var task ManagedTask
	err := c.Do(ctx, "POST", "/v1/tasks", RunRequest{Name: "spin", Argv: []string{"/bin/sh", "-c", "while :; do :; done"}}, &task)
	if err != nil {
		t.Fatal(err)
	}
	if task.Name != "spin" || task.PID <= 0 || task.Log == "" {
		t.Fatalf("task %+v", task)
	}
	defer syscall.Kill(task.PID, syscall.SIGKILL)
	if fd0, err := os.Readlink("/proc/" + itoa(task.PID) + "/fd/0"); err != nil || fd0 != os.DevNull {
		t.Errorf("stdin is %q (%v), want /dev/null", fd0, err)
	}
	if fd1, _ := os.Readlink("/proc/" + itoa(task.PID) + "/fd/1"); fd1 != task.Log {
		t.Errorf("stdout is %q, want the log %s", fd1, task.Log)
	}
	var err2 error
	if err2 = c.Do(ctx, "POST", "/v1/tasks/adopt", AdoptRequest{PID: task.PID}, nil); !errors.Is(err2, ErrConflict) {
		t.Errorf("adopting a managed task again: %v, want ErrConflict", err2)
	}
	if err2 = c.Do(ctx, "POST", "/v1/tasks", RunRequest{Argv: []string{"/no/such/program"}}, nil); !errors.Is(err2, ErrBadRequest) {
		t.Errorf("running a missing program: %v, want ErrBadRequest", err2)
	}
	var list []ManagedTask
	deadline := time.Now().Add(15 * time.Second)
	for {
		if err := c.Get(ctx, "/v1/tasks", &list); err != nil {
			t.Fatal(err)
		}
		if len(list) == 1 && list[0].CPU > 0.2 && list[0].RSS > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no CPU share measured in 15 s: %+v", list)
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("spin: cpu %.2f rss %d", list[0].CPU, list[0].RSS)
	if a.ManagedTasks() != 1 {
		t.Errorf("ManagedTasks %d, want 1", a.ManagedTasks())
	}
	if os.Geteuid() != 0 {
		t.Skip("the manifest needs ptrace of the task: root")
	}
	var snap rebalance.Snapshot
	if err := c.Get(ctx, "/v1/rebalance/snapshot", &snap); err != nil {
		t.Fatal(err)
	}
	if snap.Self != "m1" || len(snap.View.Nodes) != 1 || len(snap.View.Tasks) != 1 || snap.View.Tasks[0].Manifest == nil {
		t.Fatalf("snapshot %+v", snap)
	}
	if snap.View.Nodes[0].Load < 0.2 {
		t.Errorf("node load %.2f, want the spinning task's share at least", snap.View.Nodes[0].Load)
	}
	// A task that ends is forgotten.
	syscall.Kill(task.PID, syscall.SIGKILL)
	deadline = time.Now().Add(10 * time.Second)
	for a.ManagedTasks() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("an ended task is still listed after 10 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// The agent reaps the zombies of the tasks it started, not the other
// children of the program it runs in: a child of this test that exited
// (a zombie for two sample periods) is still there for its own Wait.
func TestManagedLeavesOtherChildren(t *testing.T) {
	startAgent(t, t.TempDir(), "m2")
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
		if err != nil {
			t.Fatalf("the child is gone before its Wait: %v", err)
		}
		if st, err := ParseProcStat(b); err == nil && st.State == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child did not exit in 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(2*samplePeriod + samplePeriod/2)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("Wait of our own exited child: %v (the agent reaped it)", err)
	}
}
