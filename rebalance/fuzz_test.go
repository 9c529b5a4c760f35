package rebalance_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/migrated/migrated/rebalance"
)

// FuzzSnapshot decodes a snapshot as the CLI does with the agent's answer
// (or --view FILE) and plans it: whatever the bytes, no panic, and every
// proposal names a task of the view on its source and a different target.
func FuzzSnapshot(f *testing.F) {
	v := threeNodes(&testing.T{})
	v.Tasks[1].MovingTo = "c"
	v.Tasks[2].LastMoved = t0.Add(-time.Second)
	for _, s := range []rebalance.Snapshot{
		{Self: "a", Config: rebalance.DefaultConfig(), View: *v},
		{Self: "a", Config: rebalance.DefaultConfig(), View: *v,
			Backoffs: []rebalance.Backoff{{Task: "big", Target: "b", Failures: 3, Until: t0.Add(time.Hour)}}},
	} {
		b, err := json.Marshal(&s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"config":{"period":1,"high":2,"low":1,"ceiling":1,"downtime_limit":1,"max_rounds":1,"default_bandwidth":1},` +
		`"view":{"nodes":[{"id":"x","cpus":1e308,"load":-1e308,"caps":{}},{"id":"x","cpus":1,"load":1e308}],` +
		`"tasks":[{"id":"t","node":"x","cpu":1e308,"rss":18446744073709551615,"manifest":{},"moving_to":"nowhere"}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s rebalance.Snapshot
		if json.Unmarshal(b, &s) != nil {
			return
		}
		pl, err := s.Plan()
		if err != nil {
			return
		}
		tasks := map[string]string{}
		for _, tk := range s.View.Tasks {
			tasks[tk.ID] = tk.Node
		}
		seen := map[string]bool{}
		for _, p := range pl.Proposals {
			if on, ok := tasks[p.Task]; !ok || on != p.Source || p.Target == p.Source || seen[p.Source] {
				t.Fatalf("proposal %+v: task on %q (known %v), source seen before %v", p, on, ok, seen[p.Source])
			}
			seen[p.Source] = true
		}
	})
}
