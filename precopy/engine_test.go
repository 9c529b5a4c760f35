package precopy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/migrated/migrated/checkpoint"
	"github.com/migrated/migrated/image"
)

// memSink is a destination in memory: it keeps the pages it was sent, by
// address, and applies layouts the way the Layout contract says. rate, if
// set, paces it to that many bytes per second (a link).
type memSink struct {
	pageSize uint64
	pages    map[uint64][]byte // nil: zero page
	vmas     []*image.VMA
	rate     float64
	layouts  []*Layout
	stats    []RoundStats
	// afterRound runs at the end of each round (to make the task change
	// its layout during pre-copy).
	afterRound func(round int)
	sent       uint64
}

func newMemSink(pageSize uint64) *memSink {
	return &memSink{pageSize: pageSize, pages: map[uint64][]byte{}}
}

func (m *memSink) Layout(l *Layout) error {
	m.layouts = append(m.layouts, l)
	if len(l.Added)+len(l.Removed)+len(l.Changed)+len(l.Fresh) == 0 {
		m.vmas = l.VMAs
		return nil
	}
	var mapped []Range
	for _, v := range l.VMAs {
		mapped = append(mapped, Range{v.Start, v.End})
	}
	covered := normalize(mapped)
	for a := range m.pages {
		if !covered.Contains(a) || l.Fresh.Contains(a) {
			delete(m.pages, a)
		}
	}
	m.vmas = l.VMAs
	return nil
}

func (m *memSink) Pages(round int, b *checkpoint.PageBatch, zero bool) error {
	for j, i := range b.Indices {
		a := b.VMA.Start + uint64(i)*m.pageSize
		if zero {
			m.pages[a] = nil
			continue
		}
		m.pages[a] = bytes.Clone(b.Data[uint64(j)*m.pageSize : uint64(j+1)*m.pageSize])
	}
	n := uint64(len(b.Indices)) * m.pageSize
	m.sent += n
	if m.rate > 0 {
		time.Sleep(time.Duration(float64(n) / m.rate * 1e9))
	}
	return nil
}

func (m *memSink) RoundDone(st *RoundStats) error {
	m.stats = append(m.stats, *st)
	if m.afterRound != nil {
		m.afterRound(st.Round)
	}
	return nil
}

// compare checks the sink against the task's memory (the task frozen):
// every page of every anonymous private VMA, and every page sent of the
// other VMAs whose pages travel.
func (m *memSink) compare(t *testing.T, pid int) (pages int) {
	t.Helper()
	vmas, err := checkpoint.VMAs(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(vmas) != len(m.vmas) {
		t.Errorf("sink has %d VMAs, the task %d", len(m.vmas), len(vmas))
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	buf := make([]byte, m.pageSize)
	zero := make([]byte, m.pageSize)
	bad := 0
	for _, v := range vmas {
		if !v.PagesTravel() {
			continue
		}
		for a := v.Start; a < v.End; a += m.pageSize {
			got, ok := m.pages[a]
			if !zeroWhenAbsent(v.Kind) && !ok {
				continue
			}
			// /proc/PID/mem reads PROT_NONE pages too (with ptrace rights).
			if _, err := mem.ReadAt(buf, int64(a)); err != nil {
				t.Fatalf("read %#x of %d (%s): %v", a, pid, v.Path, err)
			}
			want := got
			if want == nil {
				want = zero
			}
			if !bytes.Equal(buf, want) {
				if bad < 10 {
					t.Errorf("page %#x (%s, sent %v): sink differs from the task", a, v.Path, ok)
				}
				bad++
			}
			pages++
		}
	}
	if bad > 0 {
		t.Errorf("%d pages differ", bad)
	}
	return pages
}

func availableKinds(t *testing.T) []Kind {
	return []Kind{KindUFFD, KindSoftDirty, KindHash}
}

// TestRunConvergesAndFinalIsExact pre-copies a task that keeps dirtying
// memory (and maps, unmaps and drops pages meanwhile), freezes it, sends
// the final round, and checks that the sink then equals the task's memory.
func TestRunConvergesAndFinalIsExact(t *testing.T) {
	needRoot(t)
	for _, kind := range availableKinds(t) {
		t.Run(string(kind), func(t *testing.T) {
			d := startDirtier(t, 4096, "mix") // 16 MiB with 4 KiB pages
			if kind == KindSoftDirty {
				if err := softDirtyProbe(); err != nil {
					t.Skipf("soft-dirty cannot run on this kernel: %v", err)
				}
			}
			d.do("spin 20")
			sink := newMemSink(d.PageSize)
			sink.rate = 200e6
			// The hooks below also write 400 pages (1.6 MB, 8 ms at the
			// sink's 200 MB/s, over the 5 ms limit) after rounds 0 and 1,
			// so that there are rounds 1 and 2 even when the spinning
			// thread gets little CPU on a loaded machine.
			var many strings.Builder
			for i := 1000; i < 1400; i++ {
				fmt.Fprintf(&many, " %d", i)
			}
			var newMap, resv, shm uint64
			sink.afterRound = func(round int) {
				if round < 2 {
					d.do("w%s", many.String())
				}
				switch round {
				case 0:
					d.do("z 5")
					d.do("z 6")
					fmt.Sscanf(d.do("map 32"), "%x", &newMap)
					fmt.Sscanf(d.do("resv 20000"), "%x", &resv) // 78 MiB PROT_NONE
					fmt.Sscanf(d.do("shm 16"), "%x", &shm)
				case 1:
					d.do("unmap %x 16", newMap)
					d.do("k 9")
					d.do("poke %x 3", resv)
					// Replace the rest of the new mapping by a fresh one
					// at the same place: same kind, new contents.
					d.do("fixed %x 16", newMap+16*d.PageSize)
					d.do("pw %x 2", shm)
				}
			}
			var progress []Progress
			opts := Options{
				Tracker:    kind,
				Controller: ControllerConfig{DowntimeLimit: 5 * time.Millisecond, MaxRounds: 12},
				Progress:   func(p Progress) { progress = append(progress, p) },
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			s, err := Run(ctx, d.PID, sink, opts)
			if errors.Is(err, ErrUnavailable) {
				t.Skipf("%s cannot run on this kernel: %v", kind, err)
			}
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			defer s.Close()
			if s.Tracker() != kind {
				t.Fatalf("tracker %s, want %s", s.Tracker(), kind)
			}
			dec := s.Decision()
			t.Logf("%s: %d rounds, switch-over: %s, estimated downtime %v, sent %d MiB, bandwidth %.0f MB/s",
				kind, len(s.Rounds()), dec.Reason, dec.EstimatedDowntime, s.SentBytes()>>20, s.Bandwidth()/1e6)
			if dec.Action != SwitchOver {
				t.Fatalf("Run returned without switching over: %+v", dec)
			}
			if len(s.Rounds()) < 3 {
				t.Errorf("only %d rounds: the hooks dirty enough for three", len(s.Rounds()))
			}
			if len(progress) == 0 {
				t.Errorf("no progress reported")
			}
			f, err := checkpoint.Freeze(d.PID)
			if err != nil {
				t.Fatal(err)
			}
			st, err := s.Final(ctx)
			if err != nil {
				f.Thaw()
				t.Fatalf("Final: %v", err)
			}
			t.Logf("final round: %d pages, %d zero pages", st.Pages, st.ZeroPages)
			// The layout changes made during pre-copy reached the sink.
			var added, shrunk, fresh bool
			for _, l := range sink.layouts {
				for _, v := range l.Added {
					added = added || v.Start == newMap
				}
				for _, c := range l.Changed {
					shrunk = shrunk || (c.Old.Start == newMap && c.New.End < c.Old.End)
				}
				for _, v := range l.Removed {
					shrunk = shrunk || v.Start == newMap // an unmap at the front may also show this way
				}
				fresh = fresh || l.Fresh.Contains(newMap)
			}
			if !added || !fresh {
				t.Errorf("the mapping made in round 0 at %#x: added %v, fresh %v", newMap, added, fresh)
			}
			if !shrunk {
				t.Errorf("the half-unmapping of %#x in round 1 never showed in a layout", newMap)
			}
			n := sink.compare(t, d.PID)
			if n < d.Pages {
				t.Errorf("compared %d pages, fewer than the region's %d", n, d.Pages)
			}
			if err := f.Thaw(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			var written int
			if _, err := fmt.Sscanf(d.do("stop"), "ok %d", &written); err != nil || written == 0 {
				t.Errorf("task after pre-copy: wrote %d pages (%v)", written, err)
			}
			t.Logf("the task wrote %d times into its pages meanwhile", written)
			if got := uwFlagged(t, d.PID); len(got) != 0 {
				t.Errorf("after Close, VMAs still uffd-wp registered: %v", got)
			}
		})
	}
}

// TestRunCanceled: a canceled pre-copy undoes everything.
func TestRunCanceled(t *testing.T) {
	needRoot(t)
	d := startDirtier(t, 1024, "all")
	before := fdsOf(t, d.PID)
	ctx, cancel := context.WithCancel(context.Background())
	sink := newMemSink(d.PageSize)
	sink.afterRound = func(int) { cancel() }
	d.do("spin 50")
	_, err := Run(ctx, d.PID, sink, Options{Controller: ControllerConfig{DowntimeLimit: time.Nanosecond}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: %v", err)
	}
	if got := uwFlagged(t, d.PID); len(got) != 0 {
		t.Errorf("after a canceled Run, VMAs still uffd-wp registered: %v", got)
	}
	if got := fdsOf(t, d.PID); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("fds %v, before %v", got, before)
	}
	if ans := d.do("stop"); ans[:2] != "ok" {
		t.Errorf("task after a canceled pre-copy: %q", ans)
	}
}

// TestRunAutoConverge: a task that dirties memory faster than the (paced)
// sink drains it never converges; with auto-converge the engine throttles
// it step by step (a real SIGSTOP/SIGCONT duty cycle here, or cpu.max),
// then gives up, and the task is left running.
func TestRunAutoConverge(t *testing.T) {
	needRoot(t)
	d := startDirtier(t, 2048, "all")
	d.do("spin 200")
	sink := newMemSink(d.PageSize)
	sink.rate = 100e6
	// The same 50 pages written after every round: the rounds never get
	// to nothing and never shrink, even if the spinning thread is starved.
	sink.afterRound = func(int) {
		d.do("w 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50")
	}
	var throttles []float64
	opts := Options{
		Tracker: KindUFFD,
		Controller: ControllerConfig{
			DowntimeLimit: time.Microsecond, MaxRounds: 8, StallRounds: 1,
			AutoConverge: true, ThrottleInitial: 0.5, ThrottleStep: 0.2, ThrottleMax: 0.9,
		},
		Progress: func(p Progress) { throttles = append(throttles, p.Throttle) },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Run(ctx, d.PID, sink, opts)
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("uffd-wp cannot run on this kernel (6.1 has no WP_ASYNC): %v", err)
	}
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	defer s.Close()
	var reasons []Reason
	for _, r := range s.Rounds() {
		reasons = append(reasons, r.Decision.Reason)
	}
	t.Logf("rounds %v, throttles seen %v, end %s", reasons, throttles, s.Decision().Reason)
	if !slices.Contains(reasons, ReasonThrottled) {
		t.Errorf("never throttled: %v", reasons)
	}
	if s.Decision().Action != SwitchOver {
		t.Errorf("Run ended with %+v", s.Decision())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if st := procState(t, d.PID); st == 'T' {
		t.Fatalf("task left stopped after pre-copy")
	}
	if ans := d.do("stop"); !strings.HasPrefix(ans, "ok") {
		t.Errorf("task after pre-copy: %q", ans)
	}
}
