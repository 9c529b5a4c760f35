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

// BenchmarkCapture1GiB freezes the 1 GiB mixed workload, captures its state
// but the pages (what a move's cutover does while the task is frozen) and
// thaws it: the part of a move's downtime spent on the source.
func BenchmarkCapture1GiB(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	set := workload.Build(b)
	p := set.Start(b, "mixed", workload.Opts{Args: []string{"--size-mib=1024"}, ReadyTimeout: 120 * time.Second})
	pid, err := p.WaitReady()
	if err != nil {
		b.Fatal(err)
	}
	var freeze, capture time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		f, err := checkpoint.Freeze(pid)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := f.Capture(); err != nil {
			b.Fatal(err)
		}
		capture += time.Since(t1)
		freeze += t1.Sub(t0)
		if err := f.Thaw(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(freeze.Microseconds())/1000/float64(b.N), "freeze-ms")
	b.ReportMetric(float64(capture.Microseconds())/1000/float64(b.N), "capture-ms")
	p.Finish(pid)
}
