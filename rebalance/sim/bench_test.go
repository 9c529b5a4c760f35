package sim

import (
	"testing"
	"time"

	"github.com/migrated/migrated/rebalance"
)

// BenchmarkPolicyStep1000 is one policy step (a Plan of the whole cluster)
// over 1000 nodes and 20,000 tasks, taken right after a load shift, when the
// most nodes are hot. Compare ns/op with the period (10 s by default).
func BenchmarkPolicyStep1000(b *testing.B) {
	benchmarkStep(b, 1000, 20000)
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
	_ = time.Second
}
