package precopy

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/checkpoint"
)

// The two benchmarks below measure one collection round over a task with
// 1 GiB of present, written memory, and are meant to be run side by side:
//
//	go test -run XXX -bench '1GiB' -benchtime 5x ./precopy/
//
// BenchmarkUFFDScan1GiB is PAGEMAP_SCAN's collect-and-re-protect of every
// VMA (the pages are clean: the cost is the walk); BenchmarkHashRound1GiB
// reads and hashes every page.

const benchPages = 1 << 18 // 1 GiB of 4 KiB pages

func benchTracker(b *testing.B, kind Kind, rereadVMAs bool) {
	needRoot(b)
	d := startDirtier(b, benchPages, "all")
	tr, err := NewTracker(d.PID, kind, d.PageSize)
	if err != nil {
		b.Skipf("%s: %v", kind, err)
	}
	defer tr.Close()
	vmas, err := checkpoint.VMAs(d.PID)
	if err != nil {
		b.Fatal(err)
	}
	dl, err := tr.Sync(vmas, false) // arm
	if err != nil {
		b.Fatal(err)
	}
	// What the first round sends, so that the hash tracker knows the pages.
	r, err := checkpoint.NewPageReader(d.PID, d.PageSize)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	for _, v := range vmas {
		if !trackable(v) || len(dl.Fresh.Intersect(v.Start, v.End)) == 0 {
			continue
		}
		idx, err := r.Present(v)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Read(v, idx, func(pb *checkpoint.PageBatch) error {
			tr.Sent(v, pb.Indices, pb.Data)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(benchPages) * int64(d.PageSize))
	// The machine is shared: CPU time (ours, user and kernel: the ioctls
	// and reads run in our context) says more than wall time.
	cpu0 := cpuTime(b)
	b.ResetTimer()
	defer func() {
		b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
	}()
	for i := 0; i < b.N; i++ {
		if rereadVMAs {
			if vmas, err = checkpoint.VMAs(d.PID); err != nil {
				b.Fatal(err)
			}
		}
		dl, err := tr.Sync(vmas, false)
		if err != nil {
			b.Fatal(err)
		}
		if n := len(pagesIn(dl.Dirty, d.Base, d.Pages, d.PageSize)); n != 0 {
			b.Fatalf("%d region pages dirty with nothing written", n)
		}
	}
}

func BenchmarkUFFDScan1GiB(b *testing.B)  { benchTracker(b, KindUFFD, false) }
func BenchmarkHashRound1GiB(b *testing.B) { benchTracker(b, KindHash, false) }

// BenchmarkUFFDCollect1GiB adds what every round (and the frozen final
// round) also pays: re-reading the VMA list (checkpoint.VMAs reads smaps).
func BenchmarkUFFDCollect1GiB(b *testing.B) { benchTracker(b, KindUFFD, true) }

// cpuTime is this process's user+system time.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFinalRound1GiB measures what pre-copy adds to the downtime of a
// move: the final round (re-read the VMAs, collect, send the pages written
// since the previous round) over a 1 GiB task writing 1000 pages/s, with
// the task frozen, into a sink that drops the pages. Freezing and thawing are
// outside the timer.
func BenchmarkFinalRound1GiB(b *testing.B) {
	needRoot(b)
	d := startDirtier(b, benchPages, "all")
	d.do("spin 1")
	s, err := Run(context.Background(), d.PID, discardSink{}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.Logf("tracker %s, %d rounds before the final", s.Tracker(), len(s.Rounds()))
	var pages uint64
	cpu := time.Duration(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		time.Sleep(20 * time.Millisecond) // let the task dirty some pages
		f, err := checkpoint.Freeze(d.PID)
		if err != nil {
			b.Fatal(err)
		}
		c0 := cpuTime(b)
		b.StartTimer()
		st, err := s.Final(context.Background())
		b.StopTimer()
		cpu += cpuTime(b) - c0
		f.Thaw()
		if err != nil {
			b.Fatal(err)
		}
		pages += st.Pages
		b.StartTimer()
	}
	b.ReportMetric(float64(pages)/float64(b.N), "pages/op")
	b.ReportMetric(float64(cpu)/float64(b.N)/1e6, "cpu-ms/op")
}

// BenchmarkVMAs1GiB is the cost of re-reading the VMA list of a 1 GiB task
// (checkpoint.VMAs reads /proc/PID/smaps, which walks the page tables),
// beside reading /proc/PID/maps, which does not.
func BenchmarkVMAs1GiB(b *testing.B) {
	needRoot(b)
	d := startDirtier(b, benchPages, "all")
	for _, bm := range []struct {
		name string
		fn   func() error
	}{
		{"smaps", func() error { _, err := checkpoint.VMAs(d.PID); return err }},
		{"maps", func() error { _, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", d.PID)); return err }},
	} {
		b.Run(bm.name, func(b *testing.B) {
			c0 := cpuTime(b)
			for i := 0; i < b.N; i++ {
				if err := bm.fn(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-c0)/float64(b.N)/1e6, "cpu-ms/op")
		})
	}
}

// discardSink drops everything (benchmarks: no heap of copied pages for
// the garbage collector to scan).
type discardSink struct{}

func (discardSink) Layout(*Layout) error                         { return nil }
func (discardSink) Pages(int, *checkpoint.PageBatch, bool) error { return nil }
func (discardSink) RoundDone(*RoundStats) error                  { return nil }
