package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migrated/migrated/rebalance"
	"github.com/migrated/migrated/rebalance/sim"
)

// snapshotFile writes a snapshot of a three-node POWER9 cluster whose node
// "a" is hot and returns its path.
func snapshotFile(t *testing.T) string {
	t.Helper()
	var caps = sim.DefaultKinds()[1].Caps // ppc64le-power9
	m, err := sim.NewManifest("ppc64le", caps, 4242, 1, 256<<20)
	if err != nil {
		t.Fatal(err)
	}
	s := rebalance.Snapshot{Self: "a", Config: rebalance.DefaultConfig(), View: rebalance.View{
		Now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		Nodes: []rebalance.Node{
			{ID: "a", Caps: caps, CPUs: 10, Load: 9, FreeMemory: 8 << 30},
			{ID: "b", Caps: caps, CPUs: 10, Load: 3, FreeMemory: 8 << 30},
			{ID: "c", Caps: caps, CPUs: 10, Load: 4.5, FreeMemory: 8 << 30},
		},
		Tasks: []rebalance.Task{{ID: "worker", Node: "a", Manifest: m, CPU: 2, RSS: 256 << 20}},
	}}
	b, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "view.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRebalanceCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestRebalanceDryRun(t *testing.T) {
	view := snapshotFile(t)
	controlPath = filepath.Join(t.TempDir(), "no-agent.sock")
	for _, tc := range []struct {
		name string
		args []string
		want string // in the output
		err  string // in the error
	}{
		{"text", []string{"--dry-run", "--view", view}, "a would move worker to b: node a is hot", ""},
		{"json", []string{"--dry-run", "--json", "--view", view}, `"target": "b"`, ""},
		{"not a dry run", []string{"--view", view}, "", "--dry-run"},
		{"no agent", []string{"--dry-run"}, "", "agent not running"},
		{"missing file", []string{"--dry-run", "--view", view + ".missing"}, "", "read view"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, tc.args...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil || !strings.Contains(out, tc.want) {
				t.Fatalf("error %v, output\n%s\nwant %q in it", err, out, tc.want)
			}
		})
	}
}

func TestRebalanceSimulateJSON(t *testing.T) {
	out, err := run(t, "simulate", "--nodes", "40", "--tasks", "800", "--steps", "12", "--seed", "9", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"final_max_mean", "moves", "max_moves_per_task", "incompatible_moves", "step_ms", "series", "shifts"} {
		if _, ok := r[k]; !ok {
			t.Errorf("JSON has no %q", k)
		}
	}
	if s, _ := r["series"].([]any); len(s) != 12 {
		t.Errorf("series has %d steps, want 12", len(s))
	}
	if r["incompatible_moves"] != 0.0 {
		t.Errorf("incompatible moves %v", r["incompatible_moves"])
	}
}
