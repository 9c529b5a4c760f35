package sim

import (
	"testing"

	"github.com/migrated/migrated/rebalance"
)

// BenchmarkPolicyStep1000 is one policy step (a Plan of the whole cluster)
// over 1000 nodes and 20,000 tasks, taken right after a load shift, when the
// most nodes are hot. Compare ns/op with the period (10 s by default).
func BenchmarkPolicyStep1000(b *testing.B) {
	benchmarkStep(b, 1000, 20000)
}

// BenchmarkNodeStep1000 is what one agent runs each period: its own step,
// on a view of all 1000 nodes and its own tasks, for the hottest node right
// after a load shift.
func BenchmarkNodeStep1000(b *testing.B) {
	cfg := DefaultConfig()
	v, err := ShiftedView(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	hot := 0
	for i := range v.Nodes {
		if v.Nodes[i].Load/v.Nodes[i].CPUs > v.Nodes[hot].Load/v.Nodes[hot].CPUs {
			hot = i
		}
	}
	own := &rebalance.View{Now: v.Now, Nodes: v.Nodes}
	for _, t := range v.Tasks {
		if t.Node == v.Nodes[hot].ID {
			own.Tasks = append(own.Tasks, t)
		}
	}
	pol, err := rebalance.New(cfg.Policy)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if pol.Plan(own).For(v.Nodes[hot].ID) == nil {
			b.Fatal("the hottest node proposes nothing")
		}
	}
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(cfg.Policy.Period)*100, "%period")
}

func BenchmarkPolicyStep100(b *testing.B) {
	benchmarkStep(b, 100, 2000)
}

func benchmarkStep(b *testing.B, nodes, tasks int) {
	cfg := DefaultConfig()
	cfg.Nodes, cfg.Tasks = nodes, tasks
	v, err := ShiftedView(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	pol, err := rebalance.New(cfg.Policy)
	if err != nil {
		b.Fatal(err)
	}
	var props int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		props = len(pol.Plan(v).Proposals)
	}
	b.ReportMetric(float64(props), "proposals")
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(cfg.Policy.Period)*100, "%period")
}
