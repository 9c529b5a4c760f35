package agent

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/migrated/migrated/agent/move"
	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/rebalance"
)

// joinedPair starts two agents on 127.0.0.1 in one cluster.
func joinedPair(t *testing.T) (*Agent, *Agent) {
	t.Helper()
	dir := t.TempDir()
	a := startAgent(t, dir, "ra")
	b := startAgent(t, dir, "rb", func(o *Options) { o.Join = []string{a.Cluster().LocalAddr().String()} })
	deadline := time.Now().Add(10 * time.Second)
	for len(a.Members()) != 2 || len(b.Members()) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the two agents did not see each other in 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return a, b
}

// TestRebalancePeerAdmission runs the rebalancers' peer protocol between
// two real agents: status, admission by the destination's own view
// (refused when the memory is not there), the reservation counted in the
// destination's load until released, and "arrived" refused for a move the
// destination never resumed.
func TestRebalancePeerAdmission(t *testing.T) {
	a, b := joinedPair(t)
	ra, err := rebalancerOf(a)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := rebalancerOf(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	man := rebalanceManifest(t)
	var ans peerAnswer
	if err := ra.ask(ctx, "rb", peerRequest{Op: "status"}, &ans); err != nil || !ans.OK {
		t.Fatalf("status: %+v %v", ans, err)
	}
	for _, c := range []struct {
		name string
		req  peerRequest
		ok   bool
		why  string
	}{
		{"more memory than the host has", peerRequest{Op: "admit", Task: &rebalance.Task{ID: "huge", Manifest: man, CPU: 0.01, RSS: 1 << 50}}, false, "free"},
		{"no manifest", peerRequest{Op: "admit", Task: &rebalance.Task{ID: "bare", CPU: 0.01, RSS: 1 << 20}}, false, "compatible"},
		{"no task", peerRequest{Op: "admit"}, false, "no task"},
		{"unknown op", peerRequest{Op: "steal"}, false, "unknown op"},
		{"arrived without a move", peerRequest{Op: "arrived", Task: &rebalance.Task{ID: "ghost"}, MoveID: "0011223344556677", PID: 1}, false, "not running"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var ans peerAnswer
			if err := ra.ask(ctx, "rb", c.req, &ans); err != nil {
				t.Fatal(err)
			}
			if ans.OK != c.ok || !strings.Contains(ans.Why, c.why) {
				t.Fatalf("answer %+v, want ok %v and %q", ans, c.ok, c.why)
			}
		})
	}
	// In one process both agents measure the same machine, so whether rb
	// is under the ceiling depends on the instants they sampled: an
	// admission may be refused for that, and only for that.
	time.Sleep(2 * samplePeriod)
	small := peerRequest{Op: "admit", Task: &rebalance.Task{ID: "small", Manifest: man, CPU: 0.001, RSS: 1 << 20}}
	for i := 0; ; i++ {
		if err := ra.ask(ctx, "rb", small, &ans); err != nil {
			t.Fatal(err)
		}
		if ans.OK {
			break
		}
		if !strings.Contains(ans.Why, "would rise") || i == 20 {
			t.Fatalf("small task refused: %s", ans.Why)
		}
		time.Sleep(samplePeriod)
	}
	rb.mu.Lock()
	_, reserved := rb.reserved["ra/small"]
	rb.mu.Unlock()
	if !reserved {
		t.Fatal("the admitted task is not reserved on the destination")
	}
	// The reservation is in the load rb tells its peers.
	if err := ra.ask(ctx, "rb", peerRequest{Op: "status"}, &ans); err != nil || ans.Load < 0.001 {
		t.Errorf("status with a reservation: %+v %v", ans, err)
	}
	if err := ra.ask(ctx, "rb", peerRequest{Op: "release", Task: &rebalance.Task{ID: "small"}}, &ans); err != nil || !ans.OK {
		t.Fatalf("release: %+v %v", ans, err)
	}
	rb.mu.Lock()
	n := len(rb.reserved)
	rb.mu.Unlock()
	if n != 0 {
		t.Errorf("%d reservations left after release", n)
	}
	if b.ManagedTasks() != 0 {
		t.Errorf("rb manages %d tasks; an arrival it did not resume must not make one", b.ManagedTasks())
	}
	// A node that is not a member is never asked.
	if err := ra.ask(ctx, "nobody", peerRequest{Op: "status"}, &ans); !errors.Is(err, ErrNotFound) {
		t.Errorf("asking an unknown node: %v, want ErrNotFound", err)
	}
}

// rebalanceManifest is the manifest of a real process of this host (a
// sleep): what this host accepts.
func rebalanceManifest(t *testing.T) *image.Manifest {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a manifest freezes the task with ptrace: root")
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	man, err := move.ManifestOf(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return man
}
