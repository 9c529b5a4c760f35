package move

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/migrated/migrated/checkpoint"
	"github.com/migrated/migrated/compat"
	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/precopy"
	"github.com/migrated/migrated/transport"
)

// SourceOptions tune the source side of a move.
type SourceOptions struct {
	// Host names the destination in the report.
	Host string
	// Controller tunes convergence (zero fields: precopy defaults, 300 ms
	// downtime limit).
	Controller precopy.ControllerConfig
	// Tracker forces a dirty-tracking method ("" probes).
	Tracker precopy.Kind
	// Progress is called after every pre-copy round.
	Progress func(precopy.Progress)
	// Redial opens a new session to the destination; it is used to ask for
	// the outcome of a move in doubt. Nil: a move in doubt stays in doubt.
	Redial func(ctx context.Context) (*transport.Session, error)
	// InDoubtTimeout bounds how long the source keeps asking (default 30s).
	InDoubtTimeout time.Duration
	// AllowNewIDs lets a single-threaded task take a new PID when its own is
	// taken on the destination.
	AllowNewIDs bool
	// Cutover, when set, is called before each stretch of the move in
	// which the task waits on the source agent: reading its manifest and
	// arming dirty tracking (both freeze it briefly), and the cutover; the
	// function it returns is called when the stretch ends. The agent uses
	// it to run at full priority meanwhile.
	Cutover func() (end func())
	Log     *slog.Logger
}

// NewMoveID returns a fresh random move id.
func NewMoveID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ManifestOf freezes pid just long enough to read its registers and /proc,
// and returns its manifest (the header and capability bits the destination
// decides on). The task is thawed before it returns.
func ManifestOf(pid int) (*image.Manifest, error) {
	if err := checkpoint.Preflight(pid); err != nil {
		return nil, err
	}
	f, err := checkpoint.Freeze(pid)
	if err != nil {
		return nil, err
	}
	t, err := f.CaptureQuick()
	if terr := f.Thaw(); err == nil && terr != nil {
		err = terr
	}
	if err != nil {
		return nil, err
	}
	return manifestOf(t)
}

func manifestOf(t *image.Task) (*image.Manifest, error) {
	m, err := compat.NewManifest(t)
	if err != nil {
		return nil, err
	}
	if t.Header.Vdso == nil {
		m.Header.Vdso = &image.VDSOIdentity{}
	}
	var present uint64
	for _, v := range t.Vmas {
		if v.PagesTravel() {
			present += v.End - v.Start
		}
	}
	m.MemoryBytes = present
	return m, nil
}

// Ask opens move id on s with the task's manifest and returns the
// destination's verdict (the first exchange of every move, and all of
// `migrated check`). The manifest's clocks are read from the task
// (m.Header.Pid) at the last moment, so that the destination, which
// compares them with its own on arrival, is off by the transit alone.
func Ask(ctx context.Context, s *transport.Session, id string, m *image.Manifest) (*image.Verdict, error) {
	if err := s.Send(&image.Control{Msg: &image.Control_Hello{Hello: &image.Hello{MoveId: id, FormatVersion: image.FormatVersion}}}); err != nil {
		return nil, err
	}
	if m.Header != nil && m.Header.Pid > 0 {
		m.Clocks = checkpoint.TaskClocks(int(m.Header.Pid))
	}
	if err := s.Send(&image.Control{Msg: &image.Control_Manifest{Manifest: m}}); err != nil {
		return nil, err
	}
	msg, err := s.Recv(ctx)
	if err != nil {
		return nil, err
	}
	v := msg.GetVerdict()
	if v == nil {
		return nil, fmt.Errorf("%w: expected a verdict, got %T", transport.ErrProtocol, msg.Msg)
	}
	return v, nil
}

// Source moves pid over s (a session the source dialed). On every error
// before COMMIT the task runs on exactly as before. The returned error is a
// *RejectedError, a *FailedError, ErrInDoubt, or what went wrong locally.
func Source(ctx context.Context, s *transport.Session, pid int, opts SourceOptions) (*Report, error) {
	start := time.Now()
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	id := NewMoveID()
	rep := &Report{MoveID: id, PID: pid, Host: opts.Host}
	endSetup := func() {}
	if opts.Cutover != nil {
		endSetup = sync.OnceFunc(opts.Cutover())
	}
	defer endSetup()
	m, err := ManifestOf(pid)
	if err != nil {
		return nil, err
	}
	m.AllowNewIds = opts.AllowNewIDs
	m.Header.MoveId = id
	v, err := Ask(ctx, s, id, m)
	if err != nil {
		return nil, err
	}
	rep.Verdict = compat.NewReport(v).Verdict
	if v.Kind == image.Verdict_REJECT {
		return nil, &RejectedError{Host: opts.Host, Reasons: v.Reasons}
	}
	log.Info("move accepted", "move", id, "pid", pid, "verdict", rep.Verdict)

	// Pre-copy while the task runs.
	sink := &sourceSink{ctx: ctx, s: s, pageSize: m.Header.PageSize}
	popts := precopy.Options{Tracker: opts.Tracker, PageSize: m.Header.PageSize, Controller: opts.Controller, Progress: opts.Progress,
		Armed: endSetup, Log: log}
	phase(log, "pre-copy start")
	sess, err := precopy.Run(ctx, pid, sink, popts)
	if err != nil {
		abort(s, id, err)
		return nil, fmt.Errorf("pre-copy: %w", err)
	}
	rep.Tracker = string(sess.Tracker())

	// Cutover: freeze, send what is left and the task's state.
	phase(log, "freeze")
	if opts.Cutover != nil {
		defer opts.Cutover()()
	}
	freezeStart := time.Now()
	f, err := checkpoint.Freeze(pid)
	if err != nil {
		sess.Close()
		abort(s, id, err)
		return nil, err
	}
	backOut := func(err error) (*Report, error) {
		abort(s, id, err)
		cerr := sess.Close()
		terr := f.Thaw()
		if cerr != nil || terr != nil {
			return nil, fmt.Errorf("%w (undo: %v)", err, errors.Join(cerr, terr))
		}
		return nil, err
	}
	t0 := time.Now()
	if _, err := sess.Final(ctx); err != nil {
		return backOut(fmt.Errorf("final round: %w", err))
	}
	rep.FinalRoundMs = ms(time.Since(t0))
	phase(log, "final round sent")
	t0 = time.Now()
	task, err := f.Capture()
	rep.CaptureMs = ms(time.Since(t0))
	phase(log, "captured")
	if err != nil {
		return backOut(err)
	}
	task.Header.MoveId = id
	if task.Manifest, err = manifestOf(task); err != nil {
		return backOut(err)
	}
	task.Manifest.AllowNewIds = opts.AllowNewIDs
	t0 = time.Now()
	if err := s.Send(&image.Control{Msg: &image.Control_Final{Final: task}}); err != nil {
		return backOut(err)
	}
	msg, err := s.Recv(ctx)
	if err != nil {
		return backOut(err)
	}
	rep.PrepareMs = ms(time.Since(t0))
	phase(log, "prepared")
	switch {
	case msg.GetFailed() != nil:
		_ = sess.Close()
		if terr := f.Thaw(); terr != nil {
			return nil, fmt.Errorf("%w (thaw: %v)", &FailedError{Reasons: msg.GetFailed().Reasons}, terr)
		}
		return nil, &FailedError{Reasons: msg.GetFailed().Reasons}
	case msg.GetPrepared() == nil:
		return backOut(fmt.Errorf("%w: expected Prepared, got %T", transport.ErrProtocol, msg.Msg))
	}

	// The point of no return for the destination: from here the move is
	// in doubt until Running comes back.
	if err := s.Send(&image.Control{Msg: &image.Control_Commit{Commit: &image.Commit{MoveId: id}}}); err != nil {
		return finishInDoubt(ctx, s, f, task, sess, rep, opts, start, freezeStart, err)
	}
	msg, err = s.Recv(ctx)
	if err != nil || msg.GetRunning() == nil {
		if err == nil {
			err = fmt.Errorf("%w: expected Running, got %T", transport.ErrProtocol, msg.Msg)
		}
		return finishInDoubt(ctx, s, f, task, sess, rep, opts, start, freezeStart, err)
	}
	phase(log, "running")
	return finishCommitted(f, sess, rep, s, s, task, msg.GetRunning().Pid, start, freezeStart)
}

// phase logs a step of the move at debug level with CLOCK_MONOTONIC, the
// clock of the benchmark workload's heartbeat, for a time line of a move.
func phase(log *slog.Logger, name string, args ...any) {
	log.Debug("phase", append([]any{"phase", name, "mono_ms", precopy.MonotonicMs()}, args...)...)
}

// finishCommitted kills the original once the destination runs the task.
// Signals queued for the original since task, its state, was captured are
// read just before the kill and sent to the destination over fwd, the
// move's session or the one that asked the outcome (also when there are
// none: the destination waits for them); what the destination confirms it
// sent on is counted forwarded, the rest lost. Without fwd (an operator's
// kill) they are lost.
func finishCommitted(f *checkpoint.Frozen, sess *precopy.Session, rep *Report, s, fwd *transport.Session, task *image.Task, newPID int32, start, freezeStart time.Time) (*Report, error) {
	rep.FreezeMs = ms(time.Since(freezeStart))
	rep.DowntimeMs = rep.FreezeMs
	late, lateErr := f.LateSignals(task)
	var warnings []string
	switch {
	case errors.Is(lateErr, checkpoint.ErrGone):
		warnings = append(warnings, "the original died while frozen for the cutover (killed by someone else?); the task runs on at the destination")
	case lateErr != nil:
		warnings = append(warnings, fmt.Sprintf("some signals sent to the original during the cutover could not be read: %v", lateErr))
	}
	// Forward before the kill, which may take seconds: the task runs on
	// the destination already.
	sent := false
	if fwd != nil {
		sent = fwd.Send(&image.Control{Msg: &image.Control_Forward{Forward: forwardOf(rep.MoveID, late)}}) == nil
	}
	// Tearing down a large address space takes the dying task a CPU for
	// a while (about 0.1 s per GiB here); at nice 19 it yields to the
	// host's running tasks.
	deprioritize(rep.PID)
	killErr := f.Kill()
	rep.SignalsLost = late.Count()
	if sent {
		ctx, cancel := context.WithTimeout(context.Background(), forwardDoneWait)
		msg, err := fwd.Recv(ctx)
		cancel()
		switch done := msg.GetForwardDone(); {
		case err != nil || done == nil:
			if late.Count() > 0 {
				warnings = append(warnings, "the destination did not confirm the signals forwarded to it")
			}
		default:
			rep.SignalsForwarded = int(done.Delivered)
			rep.SignalsLost = max(late.Count()-int(done.Delivered), 0)
			if done.Error != "" {
				warnings = append(warnings, "forwarding signals: "+done.Error)
			}
		}
	}
	rep.Warning = strings.Join(warnings, "; ")
	_ = sess.Close()
	rep.NewPID = int(newPID)
	rep.TotalMs = ms(time.Since(start))
	rep.Rounds = len(sess.Rounds())
	if s != nil {
		tot := s.SentTotal()
		rep.MemoryBytes, rep.WireBytes = tot.MemoryBytes, tot.WireBytes
	}
	if killErr != nil {
		return rep, fmt.Errorf("the task runs on the destination, but the original could not be killed: %w", killErr)
	}
	return rep, nil
}

// finishInDoubt keeps the original frozen and asks the destination, over
// new sessions, what became of the move. RUNNING: kill the original.
// ABORTED or UNKNOWN: the destination did not and will not resume it, so
// the original is thawed. Anything else after the timeout: an
// *InDoubtError holding the frozen original for an operator
// (`migrated resolve`).
func finishInDoubt(ctx context.Context, s *transport.Session, f *checkpoint.Frozen, task *image.Task, sess *precopy.Session, rep *Report, opts SourceOptions, start, freezeStart time.Time, cause error) (*Report, error) {
	d := &InDoubtError{MoveID: rep.MoveID, Host: rep.Host, cause: cause, f: f, task: task, sess: sess, rep: rep, s: s,
		dial: opts.Redial, start: start, freezeStart: freezeStart}
	if opts.Redial == nil {
		return nil, d
	}
	timeout := opts.InDoubtTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		r, err := d.Resolve(ctx, ResolveAsk)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, ErrInDoubt) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, d
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil, d
}

// InDoubtError is a move whose COMMIT was sent without an answer: the
// original is held frozen (never running, never killed) until Resolve
// learns or is told the outcome.
type InDoubtError struct {
	MoveID, Host string
	cause        error
	f            *checkpoint.Frozen
	sess         *precopy.Session
	rep          *Report
	s            *transport.Session // the move's session, for its counters
	task         *image.Task        // the state captured at the freeze
	dial         func(context.Context) (*transport.Session, error)
	start        time.Time
	freezeStart  time.Time
	mu           sync.Mutex
	done         bool
}

func (e *InDoubtError) Error() string {
	return fmt.Sprintf("%v (move %s to %s; the original is kept frozen; `migrated resolve %s` asks again): %v",
		ErrInDoubt, e.MoveID, e.Host, e.MoveID, e.cause)
}

func (e *InDoubtError) Is(t error) bool { return t == ErrInDoubt }

// Resolve actions.
const (
	ResolveAsk  = "ask"  // ask the destination; act only on a definite answer
	ResolveThaw = "thaw" // the operator knows the destination did not resume it
	ResolveKill = "kill" // the operator knows the destination runs it
)

// Resolve ends the doubt. ResolveAsk asks the destination: RUNNING kills the
// original and returns the report; ABORTED or UNKNOWN (the destination
// never resumed it and never will) thaws it and returns a *FailedError;
// anything else, or no answer, leaves it frozen and returns ErrInDoubt. The
// operator's ResolveThaw and ResolveKill act without asking.
func (e *InDoubtError) Resolve(ctx context.Context, action string) (*Report, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done {
		return nil, fmt.Errorf("move %s is resolved already", e.MoveID)
	}
	switch action {
	case ResolveThaw:
		e.done = true
		_ = e.sess.Close()
		if err := e.f.Thaw(); err != nil {
			return nil, err
		}
		return nil, &FailedError{Reasons: []*image.Reason{{Code: "resolved-thaw", Message: "an operator thawed the original"}}}
	case ResolveKill:
		e.done = true
		return finishCommitted(e.f, e.sess, e.rep, e.s, nil, e.task, 0, e.start, e.freezeStart)
	case ResolveAsk:
	default:
		return nil, fmt.Errorf("resolve: unknown action %q (ask, thaw or kill)", action)
	}
	if e.dial == nil {
		return nil, e
	}
	q, st, pid, err := askOutcome(ctx, e.dial, e.MoveID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInDoubt, err)
	}
	defer q.Close()
	switch st {
	case image.Outcome_RUNNING:
		e.done = true
		// The signals that came for the original while in doubt go over
		// the session that asked.
		return finishCommitted(e.f, e.sess, e.rep, e.s, q, e.task, pid, e.start, e.freezeStart)
	case image.Outcome_ABORTED, image.Outcome_UNKNOWN:
		e.done = true
		_ = e.sess.Close()
		if terr := e.f.Thaw(); terr != nil {
			return nil, fmt.Errorf("move %s was not resumed on %s; thawing the original failed: %w", e.MoveID, e.Host, terr)
		}
		return nil, &FailedError{Reasons: []*image.Reason{{Code: "not-resumed",
			Message: fmt.Sprintf("%s did not resume the task (%v); the original runs on", e.Host, st)}}}
	}
	return nil, fmt.Errorf("%w: %s says %v", ErrInDoubt, e.Host, st)
}

// askOutcome asks the destination what became of move id, and leaves the
// session open for the caller to close, which may first send Forward on it.
func askOutcome(ctx context.Context, dial func(context.Context) (*transport.Session, error), id string) (*transport.Session, image.Outcome_State, int32, error) {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := dial(cctx)
	if err != nil {
		return nil, 0, 0, err
	}
	fail := func(err error) (*transport.Session, image.Outcome_State, int32, error) {
		_ = s.Close()
		return nil, 0, 0, err
	}
	if err := s.Send(&image.Control{Msg: &image.Control_OutcomeQuery{OutcomeQuery: &image.OutcomeQuery{MoveId: id}}}); err != nil {
		return fail(err)
	}
	msg, err := s.Recv(cctx)
	if err != nil {
		return fail(err)
	}
	o := msg.GetOutcome()
	if o == nil {
		return fail(fmt.Errorf("%w: expected Outcome, got %T", transport.ErrProtocol, msg.Msg))
	}
	return s, o.State, o.Pid, nil
}

func abort(s *transport.Session, id string, cause error) {
	_ = s.Send(&image.Control{Msg: &image.Control_Abort{Abort: &image.Abort{MoveId: id, Reason: cause.Error()}}})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// sourceSink carries pre-copy's rounds over the session.
type sourceSink struct {
	ctx      context.Context
	s        *transport.Session
	pageSize uint64
	zero     []byte
}

func (k *sourceSink) ack(round int) error {
	msg, err := k.s.Recv(k.ctx)
	if err != nil {
		return err
	}
	if f := msg.GetFailed(); f != nil {
		return &FailedError{Reasons: f.Reasons}
	}
	a := msg.GetRoundAck()
	if a == nil || int(a.Round) != round {
		return fmt.Errorf("%w: expected RoundAck %d, got %v", transport.ErrProtocol, round, msg)
	}
	return nil
}

func (k *sourceSink) Layout(l *precopy.Layout) error {
	lm := &image.Layout{Round: uint32(l.Round), Vmas: l.VMAs}
	for _, r := range l.Fresh {
		lm.Fresh = append(lm.Fresh, r.Start, r.End)
	}
	if err := k.s.Send(&image.Control{Msg: &image.Control_Layout{Layout: lm}}); err != nil {
		return err
	}
	return k.ack(l.Round)
}

func (k *sourceSink) Pages(round int, b *checkpoint.PageBatch, zero bool) error {
	data := b.Data
	if zero {
		n := uint64(len(b.Indices)) * k.pageSize
		if uint64(len(k.zero)) < n {
			k.zero = make([]byte, n)
		}
		data = k.zero[:n]
	}
	shift := uint8(0)
	for ps := k.pageSize; ps > 1; ps >>= 1 {
		shift++
	}
	return k.s.SendPages(k.ctx, transport.PageBatch{Round: uint32(round), Start: b.VMA.Start, PageShift: shift, Indices: b.Indices, Pages: data})
}

func (k *sourceSink) RoundDone(st *precopy.RoundStats) error {
	if err := k.s.FlushPages(k.ctx); err != nil {
		return err
	}
	ss := k.s.SentStats(uint32(st.Round))
	rd := &image.RoundDone{Round: uint32(st.Round), Pages: ss.Pages, Frames: ss.Frames, MemoryBytes: ss.MemoryBytes, WireBytes: ss.WireBytes}
	if err := k.s.Send(&image.Control{Msg: &image.Control_RoundDone{RoundDone: rd}}); err != nil {
		return err
	}
	return k.ack(st.Round)
}
