package precopy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/migrated/migrated/checkpoint"
	"github.com/migrated/migrated/image"
	"golang.org/x/sys/unix"
)

// Sink receives what pre-copy sends. The move implements it on top of the
// transport. Calls come from one goroutine, in this order per round:
// Layout, then Pages any number of times, then RoundDone.
type Sink interface {
	// Layout describes the address space the round's pages land on.
	Layout(l *Layout) error
	// Pages sends a batch of pages of one VMA. The batch (and its Data) is
	// valid only during the call. A batch of zero pages (Zero set) stands
	// for pages the task no longer holds data for: the destination makes
	// them what a fresh mapping holds there.
	Pages(round int, b *checkpoint.PageBatch, zero bool) error
	// RoundDone ends a round. It should return once the round's pages have
	// left (the engine measures the bandwidth up to its return).
	RoundDone(st *RoundStats) error
}

// RoundStats describes one round.
type RoundStats struct {
	Round int
	// Final is set for the round sent with the task frozen.
	Final bool
	// Pages were sent with their data, ZeroPages as zero pages.
	Pages, ZeroPages uint64
	// Bytes is Pages times the page size.
	Bytes uint64
	// FreshBytes is the part of Bytes sent for fresh ranges.
	FreshBytes uint64
	// Sync is the time the tracker took to collect the dirty pages, Send
	// the time from the first page to RoundDone's return.
	Sync, Send time.Duration
	// Bandwidth is Bytes/Send in bytes/s (0 when nothing was sent).
	Bandwidth float64
	// Decision is the controller's decision taken before the round (zero
	// for round 0 and the final round).
	Decision Decision
}

// Progress is reported after every round, for a live display.
type Progress struct {
	Round   int
	Tracker Kind
	// SentBytes is the memory sent so far (all rounds).
	SentBytes uint64
	// RemainingBytes is what the last collection found still to send.
	RemainingBytes uint64
	// DirtyRate is how fast the task dirtied memory over the last round
	// (bytes/s), Bandwidth how fast the last round was sent.
	DirtyRate, Bandwidth float64
	// EstimatedDowntime is RemainingBytes at Bandwidth.
	EstimatedDowntime time.Duration
	// Throttle is the fraction of CPU time taken from the task.
	Throttle float64
	Elapsed  time.Duration
}

// Options tune Run. The zero value probes the tracker and uses the
// controller's defaults.
type Options struct {
	// Tracker forces a tracking method ("" probes: uffd-wp, soft-dirty,
	// hash).
	Tracker Kind
	// PageSize of the task (0: this host's).
	PageSize uint64
	// Controller configuration (zero fields take the defaults).
	Controller ControllerConfig
	// Progress, when set, is called after every round.
	Progress func(Progress)
	// NewThrottle makes the throttle for auto-converge (nil: NewThrottle).
	NewThrottle func(pid int) Throttle
	// Armed, when set, is called once tracking is armed and round 0's
	// pages are known, before they are sent: the setup that freezes or
	// write-protects the task is over.
	Armed func()
	// Log receives one debug line per round (its collection and sending
	// times, for a time line of a move). Nil: no logging.
	Log *slog.Logger
}

// Session is pre-copy of one task: armed tracking, the layout the
// destination holds, and what is still to send.
type Session struct {
	pid      int
	sink     Sink
	opts     Options
	pageSize uint64
	tracker  Tracker
	probed   []error
	reader   *checkpoint.PageReader
	pm       *pagemapReader
	ctl      *Controller
	throttle Throttle

	prev       []*image.VMA // the layout last sent
	prevTravel Ranges
	pending    *Delta // collected and not sent (at switch-over)
	round      int
	start      time.Time
	prevSync   time.Time
	lastSync   time.Time
	bandwidth  float64
	sent       uint64
	decision   Decision
	rounds     []RoundStats
	closed     bool
}

// Run arms dirty tracking of pid and sends its memory in rounds while it
// runs: round 0 every page that holds data, then the pages written during
// the previous round and new mappings whole, until the controller says to
// switch over. It then returns the session, still armed: the caller
// freezes the task and calls Final, then Close. On error everything is
// undone (the task is left as it was) and the session is nil.
func Run(ctx context.Context, pid int, sink Sink, opts Options) (*Session, error) {
	s, err := start(pid, sink, opts)
	if err != nil {
		return nil, err
	}
	if err := s.loop(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func start(pid int, sink Sink, opts Options) (*Session, error) {
	s := &Session{pid: pid, sink: sink, opts: opts, pageSize: opts.PageSize, ctl: NewController(opts.Controller)}
	if s.opts.Log == nil {
		s.opts.Log = slog.New(slog.DiscardHandler)
	}
	if s.pageSize == 0 {
		s.pageSize = uint64(os.Getpagesize())
	}
	var err error
	if opts.Tracker == "" {
		s.tracker, s.probed, err = Probe(pid, s.pageSize)
	} else {
		s.tracker, err = NewTracker(pid, opts.Tracker, s.pageSize)
	}
	if err != nil {
		return nil, err
	}
	if s.reader, err = checkpoint.NewPageReader(pid, s.pageSize); err != nil {
		s.tracker.Close()
		return nil, err
	}
	if s.pm, err = openPagemap(pid, s.pageSize); err != nil {
		s.tracker.Close()
		s.reader.Close()
		return nil, err
	}
	s.start = time.Now()
	return s, nil
}

// Tracker is the tracking method in use, and Probed why the methods tried
// before it did not work.
func (s *Session) Tracker() Kind        { return s.tracker.Kind() }
func (s *Session) Probed() []error      { return s.probed }
func (s *Session) Rounds() []RoundStats { return s.rounds }

// Decision is the controller's decision that ended Run: why it switched
// over, and the estimated downtime of what remained then.
func (s *Session) Decision() Decision { return s.decision }

// SentBytes is the memory sent so far.
func (s *Session) SentBytes() uint64 { return s.sent }

// Bandwidth is the last measured rate of sending, bytes/s.
func (s *Session) Bandwidth() float64 { return s.bandwidth }

func (s *Session) loop(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		vmas, delta, syncTime, err := s.collect(false)
		if err != nil {
			return err
		}
		plan, err := s.plan(vmas, delta)
		if err != nil {
			return err
		}
		if s.round == 0 && s.opts.Armed != nil {
			s.opts.Armed()
		}
		var dec Decision
		if s.round > 0 {
			// What the task wrote since the previous collection.
			dirtyRate := 0.0
			if dt := s.lastSync.Sub(s.prevSync); dt > 0 {
				dirtyRate = float64(plan.bytes) / dt.Seconds()
			}
			dec = s.ctl.Decide(Observation{
				Round:          s.round,
				RemainingPages: plan.pages + plan.zero,
				RemainingBytes: plan.bytes,
				SentBytes:      s.rounds[len(s.rounds)-1].Bytes,
				Bandwidth:      s.bandwidth,
				Elapsed:        time.Since(s.start),
			})
			s.decision = dec
			s.report(plan.bytes, dirtyRate, dec)
			if dec.Action == SwitchOver {
				s.pending = delta
				if s.throttle != nil {
					// A SIGSTOP cycle must not run into the caller's
					// freeze; cpu.max stays until Close.
					if _, ok := s.throttle.(*signalThrottle); ok {
						s.throttle.Stop()
						s.throttle = nil
					}
				}
				return nil
			}
			if err := s.setThrottle(dec.Throttle); err != nil {
				return err
			}
		}
		st, err := s.send(ctx, vmas, plan, false)
		if err != nil {
			return err
		}
		st.Sync, st.Decision = syncTime, dec
		s.logRound(st)
		s.rounds = append(s.rounds, *st)
		s.round++
	}
}

func (s *Session) logRound(st *RoundStats) {
	s.opts.Log.Debug("pre-copy round", "round", st.Round, "final", st.Final, "pages", st.Pages, "zero_pages", st.ZeroPages,
		"sync_ms", st.Sync.Seconds()*1e3, "send_ms", st.Send.Seconds()*1e3, "bandwidth_MBps", st.Bandwidth/1e6,
		"reason", st.Decision.Reason, "mono_ms", MonotonicMs())
}

// MonotonicMs is CLOCK_MONOTONIC in milliseconds: the clock the benchmark
// workload stamps its heartbeat gaps with, so that log lines and gaps can be
// put on one time line.
func MonotonicMs() float64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return float64(ts.Sec)*1e3 + float64(ts.Nsec)/1e6
}

func (s *Session) report(remaining uint64, dirtyRate float64, d Decision) {
	if s.opts.Progress == nil {
		return
	}
	s.opts.Progress(Progress{
		Round: s.round, Tracker: s.tracker.Kind(), SentBytes: s.sent, RemainingBytes: remaining,
		DirtyRate: dirtyRate, Bandwidth: s.bandwidth, EstimatedDowntime: d.EstimatedDowntime,
		Throttle: s.ctl.Throttle(), Elapsed: time.Since(s.start),
	})
}

func (s *Session) setThrottle(f float64) error {
	if f <= 0 && s.throttle == nil {
		return nil
	}
	if s.throttle == nil {
		mk := s.opts.NewThrottle
		if mk == nil {
			mk = NewThrottle
		}
		s.throttle = mk(s.pid)
	}
	return s.throttle.Set(f)
}

// collect reads the layout and syncs the tracker (the throttle paused, so
// that a SIGSTOP cycle does not meet a freeze of the tracker's own).
func (s *Session) collect(frozen bool) ([]*image.VMA, *Delta, time.Duration, error) {
	t0 := time.Now()
	vmas, err := checkpoint.VMAs(s.pid)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("pre-copy round %d: %w", s.round, err)
	}
	if s.throttle != nil {
		s.throttle.Pause()
		defer s.throttle.Resume()
	}
	d, err := s.tracker.Sync(vmas, frozen)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("pre-copy round %d: %s: %w", s.round, s.tracker.Kind(), err)
	}
	s.prevSync, s.lastSync = s.lastSync, time.Now()
	return vmas, d, s.lastSync.Sub(t0), nil
}

// vmaPlan is what a round sends of one VMA.
type vmaPlan struct {
	v     *image.VMA
	read  []uint32 // pages read and sent with their data
	zero  []uint32 // pages sent as zero pages
	fresh int      // how many of read are in fresh ranges
}

type roundPlan struct {
	layout             *Layout
	vmas               []vmaPlan
	pages, zero, bytes uint64
}

// zeroWhenAbsent tells the kinds whose pages without data read as zeros.
func zeroWhenAbsent(k image.VMAKind) bool {
	switch k {
	case image.VMAKind_VMA_ANON_PRIVATE, image.VMAKind_VMA_HEAP, image.VMAKind_VMA_STACK:
		return true
	}
	return false
}

// plan works out the round's layout change and the pages to send.
func (s *Session) plan(vmas []*image.VMA, d *Delta) (*roundPlan, error) {
	layout, replaced := diffLayout(s.round, s.prev, vmas)
	travel := trackableRanges(vmas)
	fresh := d.Fresh.Union(replaced).Union(travel.Subtract(s.prevTravel))
	fresh = fresh.intersectAll(travel)
	dirty := d.Dirty.Subtract(fresh)
	layout.Fresh = fresh
	p := &roundPlan{layout: layout}
	for _, v := range vmas {
		if !trackable(v) {
			continue
		}
		fr := fresh.Intersect(v.Start, v.End)
		dr := dirty.Intersect(v.Start, v.End)
		if len(fr) == 0 && len(dr) == 0 {
			continue
		}
		vp := vmaPlan{v: v}
		if len(fr) > 0 {
			present, err := s.reader.Present(v)
			if err != nil {
				return nil, err
			}
			for _, i := range present {
				if fr.Contains(v.Start + uint64(i)*s.pageSize) {
					vp.read = append(vp.read, i)
				}
			}
			vp.fresh = len(vp.read)
		}
		var dread []uint32
		for _, r := range dr {
			ents, err := s.pm.read(r)
			if err != nil {
				return nil, err
			}
			base := uint32((r.Start - v.Start) / s.pageSize)
			for k, e := range ents {
				i := base + uint32(k)
				if zeroWhenAbsent(v.Kind) && !e.holdsData(v.Kind) {
					vp.zero = append(vp.zero, i)
				} else {
					dread = append(dread, i)
				}
			}
		}
		vp.read = mergeSorted(vp.read, dread)
		p.pages += uint64(len(vp.read))
		p.zero += uint64(len(vp.zero))
		p.vmas = append(p.vmas, vp)
	}
	p.bytes = p.pages * s.pageSize
	return p, nil
}

// mergeSorted merges two ascending, disjoint index lists.
func mergeSorted(a, b []uint32) []uint32 {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	out := make([]uint32, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if a[i] < b[j] {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

var errCanceled = errors.New("pre-copy canceled")

// progressEvery is how often Progress is called within a long round.
const progressEvery = 250 * time.Millisecond

// send sends a planned round to the sink.
func (s *Session) send(ctx context.Context, vmas []*image.VMA, p *roundPlan, final bool) (*RoundStats, error) {
	st := &RoundStats{Round: s.round, Final: final}
	t0 := time.Now()
	if err := s.sink.Layout(p.layout); err != nil {
		return nil, fmt.Errorf("pre-copy round %d: layout: %w", s.round, err)
	}
	zeros := make([]byte, checkpoint.BatchPages*s.pageSize)
	lastReport := t0
	for _, vp := range p.vmas {
		v := vp.v
		n := 0
		err := s.reader.Read(v, vp.read, func(b *checkpoint.PageBatch) error {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("%w: %w", errCanceled, err)
			}
			if err := s.sink.Pages(s.round, b, false); err != nil {
				return err
			}
			s.tracker.Sent(v, b.Indices, b.Data)
			st.Pages += uint64(len(b.Indices))
			if s.opts.Progress != nil && time.Since(lastReport) >= progressEvery {
				lastReport = time.Now()
				s.opts.Progress(Progress{
					Round: s.round, Tracker: s.tracker.Kind(), SentBytes: s.sent + st.Pages*s.pageSize,
					RemainingBytes: p.bytes - min(p.bytes, st.Pages*s.pageSize), Bandwidth: s.bandwidth,
					EstimatedDowntime: s.decision.EstimatedDowntime, Throttle: s.ctl.Throttle(), Elapsed: time.Since(s.start),
				})
			}
			if n < vp.fresh {
				st.FreshBytes += uint64(min(len(b.Indices), vp.fresh-n)) * s.pageSize
			}
			n += len(b.Indices)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("pre-copy round %d: pages of %#x-%#x: %w", s.round, v.Start, v.End, err)
		}
		for z := vp.zero; len(z) > 0; {
			k := min(len(z), checkpoint.BatchPages)
			b := &checkpoint.PageBatch{VMA: v, Indices: z[:k], Data: zeros[:uint64(k)*s.pageSize]}
			if err := s.sink.Pages(s.round, b, true); err != nil {
				return nil, fmt.Errorf("pre-copy round %d: zero pages of %#x-%#x: %w", s.round, v.Start, v.End, err)
			}
			s.tracker.Sent(v, b.Indices, nil)
			st.ZeroPages += uint64(k)
			z = z[k:]
		}
	}
	st.Bytes = st.Pages * s.pageSize
	s.sent += st.Bytes
	if err := s.sink.RoundDone(st); err != nil {
		return nil, fmt.Errorf("pre-copy round %d: %w", s.round, err)
	}
	st.Send = time.Since(t0)
	if st.Send > 0 && st.Bytes > 0 {
		st.Bandwidth = float64(st.Bytes) / st.Send.Seconds()
		// Small rounds measure mostly latency: keep the larger of the last
		// estimate and this one unless this round was big enough.
		if st.Bytes >= 4<<20 || st.Bandwidth > s.bandwidth {
			s.bandwidth = st.Bandwidth
		}
	}
	s.prev = vmas
	s.prevTravel = trackableRanges(vmas)
	return st, nil
}

// Final sends the last round: the caller holds the task frozen (every
// thread stopped), so what it sends is exact. It includes what the last
// collection of Run found and did not send.
func (s *Session) Final(ctx context.Context) (*RoundStats, error) {
	if s.closed {
		return nil, errors.New("pre-copy: Final after Close")
	}
	vmas, d, syncTime, err := s.collect(true)
	if err != nil {
		return nil, err
	}
	if s.pending != nil {
		d.Dirty = d.Dirty.Union(s.pending.Dirty)
		d.Fresh = d.Fresh.Union(s.pending.Fresh)
		s.pending = nil
	}
	// Layout changes since the last sent layout are in the diff; ranges
	// pending as fresh are fresh still.
	plan, err := s.plan(vmas, d)
	if err != nil {
		return nil, err
	}
	st, err := s.send(ctx, vmas, plan, true)
	if err != nil {
		return nil, err
	}
	st.Sync = syncTime
	s.logRound(st)
	s.rounds = append(s.rounds, *st)
	s.round++
	return st, nil
}

// Close disarms tracking (the task is left as before Run), stops any
// throttle (the task is left running unthrottled) and releases the
// session. It is safe to call more than once.
func (s *Session) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.throttle != nil {
		errs = append(errs, s.throttle.Stop())
	}
	errs = append(errs, s.tracker.Close(), s.reader.Close(), s.pm.Close())
	return errors.Join(errs...)
}
