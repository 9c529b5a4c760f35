package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/migrated/migrated/agent/move"
	"github.com/migrated/migrated/cluster"
	"github.com/migrated/migrated/compat"
	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/precopy"
	"github.com/migrated/migrated/transport"
)

// The move service: the agent's QUIC transport, the destination side of
// incoming moves, and the control endpoints that start, check and list
// moves. The protocol itself is package move.

func init() {
	RegisterService(Service{Name: "transport", Start: startMover})
	RegisterRawEndpoint("POST /v1/moves", postMove)
	RegisterEndpoint("GET /v1/moves", getMoves)
	RegisterEndpoint("POST /v1/check", postCheck)
	RegisterEndpoint("GET /v1/moves/{id}/outcome", getOutcome)
	RegisterEndpoint("POST /v1/moves/{id}/resolve", postResolve)
}

// CorruptFrameEnv, N in a source agent's environment, damages the N-th page
// frame of every session it sends (tests only).
const CorruptFrameEnv = "MIGRATED_TEST_CORRUPT_FRAME"

// RunningDelayEnv, a duration in a destination agent's environment, holds
// Running back after the resume (a window for partition tests).
const RunningDelayEnv = "MIGRATED_TEST_RUNNING_DELAY"

// FailBeforePreparedEnv, set to 1 in a destination agent's environment,
// makes it fail every incoming move after building the process and before
// answering Prepared. For failure tests only.
const FailBeforePreparedEnv = "MIGRATED_TEST_FAIL_BEFORE_PREPARED"

// mover is the per-agent state of the move service.
type mover struct {
	a        *Agent
	tr       *transport.Transport
	outcomes move.Outcomes
	mu       sync.Mutex
	inflight map[string]*MoveStatus
	inDoubt  map[string]*move.InDoubtError
}

var movers sync.Map // *Agent -> *mover

func moverOf(a *Agent) (*mover, error) {
	m, ok := movers.Load(a)
	if !ok {
		return nil, fmt.Errorf("%w: the move service is not running", ErrUnavailable)
	}
	return m.(*mover), nil
}

func startMover(ctx context.Context, a *Agent) (func(context.Context) error, error) {
	corrupt, _ := strconv.Atoi(os.Getenv(CorruptFrameEnv))
	tr, err := transport.New(transport.Options{
		ListenAddr:   a.QUICAddr().String(),
		Secret:       a.Secret(),
		Insecure:     a.Options().Insecure,
		CorruptFrame: corrupt,
	})
	if err != nil {
		return nil, err
	}
	if w := tr.UDPBuffers().Warning(); w != "" {
		a.Logger().Warn("UDP buffers", "warning", w)
	}
	m := &mover{a: a, tr: tr, inflight: map[string]*MoveStatus{}, inDoubt: map[string]*move.InDoubtError{}}
	runningDelay, _ := time.ParseDuration(os.Getenv(RunningDelayEnv))
	movers.Store(a, m)
	actx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			s, err := tr.Accept(actx)
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer s.Close()
				cost := startMoveCost(a.Logger(), "destination")
				defer cost.end()
				err := move.Serve(actx, s, move.DestinationOptions{
					Caps:               a.Caps(),
					Outcomes:           &m.outcomes,
					FailBeforePrepared: os.Getenv(FailBeforePreparedEnv) == "1",
					RunningDelay:       runningDelay,
					Cutover:            BoostForCutover,
					OnRunning:          func(_ string, pid int) { ownChildren.Store(pid, struct{}{}) },
					Log:                a.Logger().With("role", "destination"),
				})
				if err != nil {
					a.Logger().Info("incoming session ended", "peer", s.RemoteAddr().String(), "err", err)
				}
			}()
		}
	}()
	return func(ctx context.Context) error {
		cancel()
		err := tr.Close()
		wg.Wait()
		movers.Delete(a)
		return err
	}, nil
}

// MoveRequest starts a move (POST /v1/moves).
type MoveRequest struct {
	PID             int    `json:"pid"`
	Host            string `json:"host"`
	DowntimeLimitMs int    `json:"downtime_limit_ms,omitempty"`
	Compress        string `json:"compress,omitempty"`
	MaxBandwidth    int64  `json:"max_bandwidth,omitempty"`
	AllowNewPID     bool   `json:"allow_new_pid,omitempty"`
	AutoConverge    bool   `json:"auto_converge,omitempty"`
	MaxRounds       int    `json:"max_rounds,omitempty"`
}

// MoveStatus is a move in flight (GET /v1/moves).
type MoveStatus struct {
	MoveID   string            `json:"move_id,omitempty"`
	PID      int               `json:"pid"`
	Host     string            `json:"host"`
	State    string            `json:"state"`
	Started  time.Time         `json:"started"`
	Progress *precopy.Progress `json:"progress,omitempty"`
}

// MoveEvent is one line of the POST /v1/moves stream: progress lines, then
// one line with the report or the error.
type MoveEvent struct {
	Progress *precopy.Progress `json:"progress,omitempty"`
	Report   *move.Report      `json:"report,omitempty"`
	Error    *MoveError        `json:"error,omitempty"`
}

// MoveError is a failed move: what happened, and the compat reasons when
// the destination refused the task.
type MoveError struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Reasons []compatReason `json:"reasons,omitempty"`
}

type compatReason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// peerFor finds a live member by name or address and returns its QUIC address.
func peerFor(a *Agent, host string) (cluster.Member, string, error) {
	for _, mb := range a.Members() {
		ip, _, _ := strings.Cut(mb.Addr, ":")
		if h, _, err := net.SplitHostPort(mb.Addr); err == nil {
			ip = h
		}
		if mb.Name != host && ip != host && mb.Addr != host {
			continue
		}
		if mb.Local {
			return mb, "", fmt.Errorf("%w: %s is this host", ErrBadRequest, host)
		}
		if mb.State != cluster.StateAlive {
			return mb, "", fmt.Errorf("%w: %s is %s", ErrUnavailable, host, mb.State)
		}
		if mb.Meta == nil || !mb.Meta.QUIC.IsValid() {
			return mb, "", fmt.Errorf("%w: %s advertises no transport address", ErrUnavailable, host)
		}
		return mb, mb.Meta.QUIC.String(), nil
	}
	return cluster.Member{}, "", fmt.Errorf("%w: no member named %q (see migrated members)", ErrNotFound, host)
}

// transportFor returns the transport to dial with: the agent's own for the
// default codec, a transport of its own for a move that asks for another
// codec (the codec is a property of the sending transport).
func (m *mover) transportFor(req MoveRequest) (*transport.Transport, func(), error) {
	if req.Compress == "" || req.Compress == "s2" {
		return m.tr, func() {}, nil
	}
	codec := req.Compress
	if codec == "none" {
		codec = "raw"
	}
	if _, err := image.ParseCodec(codec); err != nil {
		return nil, nil, fmt.Errorf("%w: --compress %q: %v", ErrBadRequest, req.Compress, err)
	}
	own, err := transport.New(transport.Options{
		ListenAddr: net.JoinHostPort(m.a.QUICAddr().Addr().String(), "0"),
		Secret:     m.a.Secret(), Insecure: m.a.Options().Insecure, Codec: codec,
	})
	if err != nil {
		return nil, nil, err
	}
	return own, func() { own.Close() }, nil
}

func postMove(a *Agent, w http.ResponseWriter, r *http.Request) {
	var req MoveRequest
	if err := DecodeJSON(r, &req); err != nil {
		WriteError(w, err)
		return
	}
	if err := authorizeCaller(r, req.PID); err != nil {
		WriteError(w, err)
		return
	}
	m, err := moverOf(a)
	if err != nil {
		WriteError(w, err)
		return
	}
	_, addr, err := peerFor(a, req.Host)
	if err != nil {
		WriteError(w, err)
		return
	}
	tr, closeTr, err := m.transportFor(req)
	if err != nil {
		WriteError(w, err)
		return
	}
	defer closeTr()
	dial := func(ctx context.Context) (*transport.Session, error) { return tr.Dial(ctx, addr) }

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	var wmu sync.Mutex
	emit := func(ev MoveEvent) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = enc.Encode(ev)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	st := &MoveStatus{PID: req.PID, Host: req.Host, State: "starting", Started: time.Now()}
	key := fmt.Sprintf("%d@%d", req.PID, st.Started.UnixNano())
	m.mu.Lock()
	m.inflight[key] = st
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.inflight, key)
		m.mu.Unlock()
	}()

	ctx := context.WithoutCancel(r.Context()) // a client that goes away must not abandon a move half-way
	s, err := dial(ctx)
	if err != nil {
		emit(MoveEvent{Error: &MoveError{Code: "connect", Message: fmt.Sprintf("connect to %s (%s): %v", req.Host, addr, err)}})
		return
	}
	defer s.Close()
	if req.MaxBandwidth > 0 {
		s.SetMaxBandwidth(req.MaxBandwidth)
	}
	ctl := precopy.ControllerConfig{AutoConverge: req.AutoConverge, MaxRounds: req.MaxRounds}
	if req.DowntimeLimitMs > 0 {
		ctl.DowntimeLimit = time.Duration(req.DowntimeLimitMs) * time.Millisecond
	}
	m.mu.Lock()
	st.State = "pre-copy"
	m.mu.Unlock()
	cost := startMoveCost(a.Logger(), "source")
	defer cost.end()
	rep, err := move.Source(ctx, s, req.PID, move.SourceOptions{
		Host:       req.Host,
		Controller: ctl,
		Progress: func(p precopy.Progress) {
			m.mu.Lock()
			pp := p
			st.Progress = &pp
			m.mu.Unlock()
			emit(MoveEvent{Progress: &p})
		},
		Redial:      dial,
		AllowNewIDs: req.AllowNewPID,
		Cutover:     BoostForCutover,
		Log:         a.Logger().With("role", "source", "pid", req.PID),
	})
	if err != nil {
		var d *move.InDoubtError
		if errors.As(err, &d) {
			m.mu.Lock()
			m.inDoubt[d.MoveID] = d
			m.mu.Unlock()
			a.Logger().Error("move in doubt: the original is kept frozen", "move", d.MoveID, "pid", req.PID, "host", req.Host)
		}
		emit(MoveEvent{Error: moveError(err)})
		return
	}
	a.Logger().Info("moved", "pid", req.PID, "host", req.Host, "new_pid", rep.NewPID, "downtime_ms", rep.DowntimeMs)
	managedMoved(a, req.PID, req.Host, rep) // a managed task stays managed on the destination
	emit(MoveEvent{Report: rep})
}

func moveError(err error) *MoveError {
	var rej *move.RejectedError
	var fail *move.FailedError
	switch {
	case errors.As(err, &rej):
		me := &MoveError{Code: "rejected", Message: err.Error()}
		for _, r := range rej.Reasons {
			me.Reasons = append(me.Reasons, compatReason{r.Code, r.Message})
		}
		return me
	case errors.As(err, &fail):
		me := &MoveError{Code: "failed", Message: err.Error()}
		for _, r := range fail.Reasons {
			me.Reasons = append(me.Reasons, compatReason{r.Code, r.Message})
		}
		return me
	case errors.Is(err, move.ErrInDoubt):
		return &MoveError{Code: "in-doubt", Message: err.Error()}
	}
	return &MoveError{Code: "error", Message: err.Error()}
}

func getMoves(a *Agent, r *http.Request) (any, error) {
	m, err := moverOf(a)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []MoveStatus{}
	for _, st := range m.inflight {
		out = append(out, *st)
	}
	for id, d := range m.inDoubt {
		out = append(out, MoveStatus{MoveID: id, Host: d.Host, State: "in-doubt"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out, nil
}

// ResolveRequest decides a move in doubt (POST /v1/moves/{id}/resolve).
type ResolveRequest struct {
	Action string `json:"action"` // ask (default), thaw or kill
}

func postResolve(a *Agent, r *http.Request) (any, error) {
	cred, ok := PeerCred(r.Context())
	if !ok || cred.Uid != 0 {
		return nil, fmt.Errorf("%w: only root resolves a move in doubt", ErrNotPermitted)
	}
	var req ResolveRequest
	if err := DecodeJSON(r, &req); err != nil {
		return nil, err
	}
	if req.Action == "" {
		req.Action = move.ResolveAsk
	}
	m, err := moverOf(a)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	m.mu.Lock()
	d := m.inDoubt[id]
	m.mu.Unlock()
	if d == nil {
		return nil, fmt.Errorf("%w: no move %s in doubt here", ErrNotFound, id)
	}
	rep, err := d.Resolve(r.Context(), req.Action)
	if err != nil && errors.Is(err, move.ErrInDoubt) {
		return nil, fmt.Errorf("%w: %v", ErrConflict, err)
	}
	m.mu.Lock()
	delete(m.inDoubt, id)
	m.mu.Unlock()
	if err != nil {
		return MoveEvent{Error: moveError(err)}, nil
	}
	return MoveEvent{Report: rep}, nil
}

func getOutcome(a *Agent, r *http.Request) (any, error) {
	m, err := moverOf(a)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	st, pid := m.outcomes.Get(id)
	return map[string]any{"move_id": id, "state": strings.ToLower(st.String()), "pid": pid}, nil
}

// CheckRequest asks whether a host would take a task (POST /v1/check).
type CheckRequest struct {
	PID  int    `json:"pid"`
	Host string `json:"host"`
}

// postCheck asks the destination itself: the manifest goes over a real
// session exactly as in a move, the verdict comes back, and the session is
// aborted. The task is only frozen for the manifest's register read.
func postCheck(a *Agent, r *http.Request) (any, error) {
	var req CheckRequest
	if err := DecodeJSON(r, &req); err != nil {
		return nil, err
	}
	if err := authorizeCaller(r, req.PID); err != nil {
		return nil, err
	}
	m, err := moverOf(a)
	if err != nil {
		return nil, err
	}
	_, addr, err := peerFor(a, req.Host)
	if err != nil {
		return nil, err
	}
	man, err := move.ManifestOf(req.PID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	s, err := m.tr.Dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("%w: connect to %s: %v", ErrUnavailable, req.Host, err)
	}
	defer s.Close()
	id := move.NewMoveID()
	v, err := move.Ask(ctx, s, id, man)
	if err != nil {
		return nil, err
	}
	_ = s.Send(&image.Control{Msg: &image.Control_Abort{Abort: &image.Abort{MoveId: id, Reason: "check only"}}})
	return compat.NewReport(v), nil
}

// Stream sends in as JSON and calls fn with every JSON line of the answer
// (POST /v1/moves streams progress this way).
func (c *Client) Stream(ctx context.Context, method, path string, in any, fn func(json.RawMessage) error) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://migrated"+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("%w: no agent answers on %s: %v", ErrAgentNotRunning, c.Socket, op.Err)
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		ae := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(body, ae) != nil || ae.Message == "" {
			ae.Code, ae.Message = "http", fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		return ae
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if err := fn(json.RawMessage(sc.Bytes())); err != nil {
			return err
		}
	}
	return sc.Err()
}
