package precopy

import (
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
