package move

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/migrated/migrated/compat"
	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/internal/procfs"
	"github.com/migrated/migrated/restore"
	"github.com/migrated/migrated/transport"
)

// Outcomes remembers, per move id, what the destination did: the source
// of a move in doubt asks for it. Safe for concurrent use.
type Outcomes struct {
	mu sync.Mutex
	m  map[string]outcome
}

type outcome struct {
	state image.Outcome_State
	pid   int32
	start uint64 // the task's start time (/proc/PID/stat): which process pid was
}

func (o *Outcomes) set(id string, st image.Outcome_State, pid int32) {
	o.put(id, outcome{state: st, pid: pid})
}

func (o *Outcomes) put(id string, r outcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[string]outcome{}
	}
	o.m[id] = r
}

// setRunning records that move id's task runs here as pid.
func (o *Outcomes) setRunning(id string, pid int) {
	o.put(id, outcome{state: image.Outcome_RUNNING, pid: int32(pid), start: startTime(pid)})
}

// stillRunning reports whether move id's task is still the process its pid
// names (it may have exited, and the pid gone to another).
func (o *Outcomes) stillRunning(id string) bool {
	o.mu.Lock()
	r, ok := o.m[id]
	o.mu.Unlock()
	return ok && r.state == image.Outcome_RUNNING && r.start != 0 && startTime(int(r.pid)) == r.start
}

// startTime is pid's start time, 0 if it is gone or a zombie.
func startTime(pid int) uint64 {
	st, err := procfs.ReadStat(pid)
	if err != nil || st.Exited() {
		return 0
	}
	return st.StartTime
}

// Get returns the outcome of move id (UNKNOWN when never heard of).
func (o *Outcomes) Get(id string) (image.Outcome_State, int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if r, ok := o.m[id]; ok {
		return r.state, r.pid
	}
	return image.Outcome_UNKNOWN, 0
}

// DestinationOptions configure the destination side.
type DestinationOptions struct {
	// Caps are what this host advertises; the verdict is decided on them.
	Caps *compat.HostCaps
	// Outcomes records what became of each move (shared by the agent).
	Outcomes *Outcomes
	// FailBeforePrepared makes the destination fail on purpose after the
	// process is built and before it answers Prepared: a test hook for the
	// promise that such a failure leaves the original running.
	FailBeforePrepared bool
	// RunningDelay holds Running back after the resume: a test hook for a
	// partition after COMMIT.
	RunningDelay time.Duration
	Log          *slog.Logger
	// OnRunning is told the new PID once the task runs here.
	OnRunning func(moveID string, pid int)
	// Cutover, when set, is called when the first round after round 0
	// begins (the small rounds and the cutover, when the task's downtime
	// waits on this side); the function it returns is called when the
	// move ends.
	Cutover func() (end func())
}

// pidInUse tells whether a PID or TID exists in this PID namespace.
func pidInUse(id int32) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", id))
	return err == nil
}

// Serve answers one incoming session: an outcome query, or a move.
func Serve(ctx context.Context, s *transport.Session, opts DestinationOptions) error {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Outcomes == nil {
		opts.Outcomes = &Outcomes{}
	}
	msg, err := s.Recv(ctx)
	if err != nil {
		return err
	}
	if q := msg.GetOutcomeQuery(); q != nil {
		st, pid := opts.Outcomes.Get(q.MoveId)
		err := s.Send(&image.Control{Msg: &image.Control_Outcome{Outcome: &image.Outcome{MoveId: q.MoveId, State: st, Pid: pid}}})
		// The source hangs up, or (RUNNING: it kills the original it kept
		// frozen) forwards the signals that came for it while in doubt.
		lctx, cancel := context.WithTimeout(ctx, forwardWait)
		m, _ := s.Recv(lctx)
		cancel()
		if fw := m.GetForward(); fw != nil {
			var why error
			switch {
			case emptyForward(fw):
			case st != image.Outcome_RUNNING || fw.MoveId != q.MoveId:
				why = fmt.Errorf("move %s did not resume here", fw.MoveId)
			case !opts.Outcomes.stillRunning(q.MoveId):
				// Not to whatever process has the PID now.
				why = fmt.Errorf("the task of move %s (pid %d) has exited here", q.MoveId, pid)
			}
			answerForward(s, log.With("move", q.MoveId), int(pid), fw, why)
			awaitHangUp(ctx, s, 5*time.Second)
		}
		return err
	}
	hello := msg.GetHello()
	if hello == nil {
		return fmt.Errorf("%w: expected Hello, got %T", transport.ErrProtocol, msg.Msg)
	}
	d := &destination{ctx: ctx, s: s, opts: opts, id: hello.MoveId, log: log.With("move", hello.MoveId)}
	defer func() {
		if d.endCutover != nil {
			d.endCutover()
		}
	}()
	err = d.run()
	// Let the last message reach the source before the session closes.
	awaitHangUp(ctx, s, 10*time.Second)
	if d.proc != nil && !d.resumed {
		d.proc.Kill()
	}
	if !d.resumed {
		opts.Outcomes.set(d.id, image.Outcome_ABORTED, 0)
	}
	if err != nil {
		d.log.Warn("move ended without resuming here", "err", err)
	}
	return err
}

type destination struct {
	ctx     context.Context
	s       *transport.Session
	opts    DestinationOptions
	id      string
	log     *slog.Logger
	m       *image.Manifest
	proc    *restore.Process
	round   uint32
	resumed bool
	// freshAnon are this round's fresh ranges of anonymous memory: a zero
	// page there is zero already.
	freshAnon  [][2]uint64
	ext        extentWriter
	endCutover func()
	clocks     clockPlan
}

// fail removes the half-built process first, then tells the source: once
// the source hears Failed and thaws, no copy is left here.
func (d *destination) fail(code, msg string) {
	if d.proc != nil && !d.resumed {
		d.proc.Kill()
	}
	_ = d.s.Send(&image.Control{Msg: &image.Control_Failed{Failed: &image.Failed{MoveId: d.id, Reasons: []*image.Reason{{Code: code, Message: msg}}}}})
}

func (d *destination) run() error {
	d.opts.Outcomes.set(d.id, image.Outcome_PREPARING, 0)
	msg, err := d.s.Recv(d.ctx)
	if err != nil {
		return err
	}
	m := msg.GetManifest()
	if m == nil || m.Header == nil {
		return fmt.Errorf("%w: expected a Manifest", transport.ErrProtocol)
	}
	d.m = m
	var refuse bool
	d.clocks, refuse = planClocks(m.Clocks, d.s.RTT(), d.opts.Caps != nil && d.opts.Caps.TimeNS)
	if d.clocks.need || refuse {
		// compat refuses it where the kernel has no time namespaces.
		m.Capabilities |= 1 << uint(image.Cap_CAP_TIMENS)
	}
	v := compat.DecidePIDs(m, d.opts.Caps, pidInUse)
	if err := d.s.Send(&image.Control{Msg: &image.Control_Verdict{Verdict: v}}); err != nil {
		return err
	}
	if v.Kind == image.Verdict_REJECT {
		return fmt.Errorf("%w: %s", ErrRejected, compat.NewReport(v).String())
	}
	if err := d.s.ReceivePages(d); err != nil {
		return err
	}
	for {
		msg, err := d.s.Recv(d.ctx)
		if err != nil {
			return err
		}
		switch {
		case msg.GetLayout() != nil:
			if err := d.layout(msg.GetLayout()); err != nil {
				d.fail("restore", err.Error())
				return err
			}
		case msg.GetRoundDone() != nil:
			rd := msg.GetRoundDone()
			if err := d.s.WaitRound(d.ctx, rd.Round, rd.Frames); err != nil {
				return err
			}
			st := d.s.ReceivedStats(rd.Round)
			phase(d.log, "round applied", "round", rd.Round, "pages", st.Pages)
			if err := d.s.Send(&image.Control{Msg: &image.Control_RoundAck{RoundAck: &image.RoundAck{Round: rd.Round, PagesWritten: st.Pages}}}); err != nil {
				return err
			}
		case msg.GetFinal() != nil:
			return d.final(msg.GetFinal())
		case msg.GetAbort() != nil:
			return fmt.Errorf("source aborted: %s", msg.GetAbort().Reason)
		default:
			return fmt.Errorf("%w: unexpected %T during pre-copy", transport.ErrProtocol, msg.Msg)
		}
	}
}

func (d *destination) layout(l *image.Layout) error {
	d.round = l.Round
	phase(d.log, "layout", "round", l.Round)
	if l.Round >= 1 && d.endCutover == nil && d.opts.Cutover != nil {
		d.endCutover = d.opts.Cutover()
	}
	if d.proc == nil {
		skel := &image.Task{Header: d.m.Header, Vmas: l.Vmas, Clocks: d.clocks.taskNow()}
		for _, tid := range d.m.Tids {
			skel.Threads = append(skel.Threads, &image.Thread{Tid: tid})
		}
		p, err := restore.Start(skel, restore.Options{AllowNewPID: d.m.AllowNewIds, Log: d.log})
		if err != nil {
			return err
		}
		d.proc = p
		phase(d.log, "stub started")
	}
	if err := d.proc.ApplyLayout(l.Vmas, l.Fresh); err != nil {
		return err
	}
	d.ext.setLayout(l.Vmas)
	phase(d.log, "layout applied", "round", l.Round)
	d.freshAnon = d.freshAnon[:0]
	for _, v := range l.Vmas {
		anon := v.Kind == image.VMAKind_VMA_ANON_PRIVATE || v.Kind == image.VMAKind_VMA_HEAP || v.Kind == image.VMAKind_VMA_STACK
		if !anon {
			continue
		}
		for i := 0; i+1 < len(l.Fresh); i += 2 {
			lo, hi := max(v.Start, l.Fresh[i]), min(v.End, l.Fresh[i+1])
			if lo < hi {
				d.freshAnon = append(d.freshAnon, [2]uint64{lo, hi})
			}
		}
	}
	return d.s.Send(&image.Control{Msg: &image.Control_RoundAck{RoundAck: &image.RoundAck{Round: l.Round}}})
}

// WritePages implements transport.PageSink.
func (d *destination) WritePages(round uint32, addr uint64, data []byte) error {
	if d.proc == nil {
		return fmt.Errorf("%w: pages before the first layout", transport.ErrProtocol)
	}
	return d.proc.WriteAt(addr, data)
}

// WriteExtents implements transport.VectorPageSink.
func (d *destination) WriteExtents(round uint32, ext []transport.Extent) error {
	if d.proc == nil {
		return fmt.Errorf("%w: pages before the first layout", transport.ErrProtocol)
	}
	return d.ext.write(d.proc.PID, ext, d.proc.WriteAt)
}

// ZeroPages implements transport.PageSink.
func (d *destination) ZeroPages(round uint32, addr uint64, size int) error {
	if d.proc == nil {
		return fmt.Errorf("%w: pages before the first layout", transport.ErrProtocol)
	}
	if round == d.round {
		for _, r := range d.freshAnon {
			if addr >= r[0] && addr+uint64(size) <= r[1] {
				return nil // mapped anew this round: zero already
			}
		}
	}
	return d.proc.ZeroAt(addr, uint64(size))
}

func (d *destination) final(t *image.Task) error {
	if d.proc == nil {
		d.fail("protocol", "final state before any layout")
		return fmt.Errorf("%w: Final before Layout", transport.ErrProtocol)
	}
	// Decide again on the final state: what the task uses may have
	// changed while it ran.
	if t.Manifest == nil {
		d.fail("manifest", "the final state carries no manifest")
		return fmt.Errorf("%w: Final without a manifest", transport.ErrProtocol)
	}
	v := compat.Decide(t.Manifest, d.opts.Caps)
	if v.Kind == image.Verdict_REJECT {
		var reasons []*image.Reason
		reasons = append(reasons, v.Reasons...)
		d.proc.Kill()
		_ = d.s.Send(&image.Control{Msg: &image.Control_Failed{Failed: &image.Failed{MoveId: d.id, Reasons: reasons}}})
		return fmt.Errorf("%w at the cutover: %s", ErrRejected, compat.NewReport(v).String())
	}
	phase(d.log, "final state")
	wait, err := d.clocks.check(t.Clocks, d.proc)
	if err != nil {
		d.proc.Kill()
		_ = d.s.Send(&image.Control{Msg: &image.Control_Failed{Failed: &image.Failed{MoveId: d.id, Reasons: []*image.Reason{{Code: compat.ReasonTimeNS, Message: err.Error()}}}}})
		return fmt.Errorf("%w at the cutover: %v", ErrRejected, err)
	}
	if wait > 0 {
		d.log.Info("waiting for this host's clocks to catch up with the task's", "wait", wait)
		time.Sleep(wait)
	}
	d.proc.Task = t
	if err := d.proc.ApplyLayout(t.Vmas, nil); err != nil {
		d.fail("restore", err.Error())
		return err
	}
	phase(d.log, "final layout applied")
	if err := d.proc.Finish(); err != nil {
		d.fail("restore", err.Error())
		return err
	}
	phase(d.log, "finished")
	if d.opts.FailBeforePrepared {
		d.fail("test-failure", "the destination was told to fail before Prepared")
		return errors.New("failing before Prepared, as told")
	}
	d.opts.Outcomes.set(d.id, image.Outcome_PREPARED, 0)
	if err := d.s.Send(&image.Control{Msg: &image.Control_Prepared{Prepared: &image.Prepared{MoveId: d.id}}}); err != nil {
		return err
	}
	msg, err := d.s.Recv(d.ctx)
	if err != nil {
		// The source is gone before COMMIT: never resume.
		return fmt.Errorf("no commit: %w", err)
	}
	if msg.GetCommit() == nil {
		return fmt.Errorf("not committed: %v", msg)
	}
	phase(d.log, "commit")
	if err := d.proc.Resume(); err != nil {
		return err
	}
	phase(d.log, "resumed")
	d.resumed = true
	d.opts.Outcomes.setRunning(d.id, d.proc.PID)
	if d.opts.RunningDelay > 0 {
		time.Sleep(d.opts.RunningDelay) // test hook: a window after the resume, before Running
	}
	if d.opts.OnRunning != nil {
		d.opts.OnRunning(d.id, d.proc.PID)
	}
	d.log.Info("move resumed here", "pid", d.proc.PID)
	if err := d.s.Send(&image.Control{Msg: &image.Control_Running{Running: &image.Running{MoveId: d.id, Pid: int32(d.proc.PID)}}}); err != nil {
		return err
	}
	d.takeForward()
	return nil
}

// takeForward waits (a little) for the source's Forward, sends the task
// the signals that came for the original during the cutover, and answers
// ForwardDone. The task runs here whatever happens: a Forward that does
// not come is only logged (the source counts what was not confirmed as
// lost).
func (d *destination) takeForward() {
	ctx, cancel := context.WithTimeout(d.ctx, forwardWait)
	defer cancel()
	msg, err := d.s.Recv(ctx)
	if err != nil {
		d.log.Warn("no Forward from the source after Running", "err", err)
		return
	}
	fw := msg.GetForward()
	if fw == nil {
		d.log.Warn("expected Forward after Running", "got", fmt.Sprintf("%T", msg.Msg))
		return
	}
	answerForward(d.s, d.log, d.proc.PID, fw, nil)
}

// awaitHangUp waits, at most d, for the source to close the session: a
// message sent last reaches it before the session closes here.
func awaitHangUp(ctx context.Context, s *transport.Session, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	_, _ = s.Recv(ctx)
}

// forwardWait bounds the destination's wait for Forward, which the source
// sends right after Running (or Outcome) came; forwardDoneWait the
// source's for the answer, after it killed the original.
const (
	forwardWait     = 10 * time.Second
	forwardDoneWait = 5 * time.Second
)
