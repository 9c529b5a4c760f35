package engine_test

import (
	"io"
	"os"
	"testing"
	"time"

	"github.com/migrated/migrated/checkpoint"
	"github.com/migrated/migrated/e2e/workload"
)

// BenchmarkDump256MiB dumps the mixed workload in-process (image discarded,
// task left running) for CPU profiles of the source side.
func BenchmarkDump256MiB(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	set := workload.Build(b)
	p := set.Start(b, "mixed", workload.Opts{Args: []string{"--size-mib=256"}, ReadyTimeout: 120 * time.Second})
	pid, err := p.WaitReady()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(256 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, st, err := checkpoint.Dump(pid, io.Discard, checkpoint.DumpOptions{LeaveRunning: true})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(st.Frozen.Milliseconds()), "frozen-ms")
	}
	b.StopTimer()
	p.Finish(pid)
}
