package agent

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/migrated/migrated/agent/move"
	"github.com/migrated/migrated/cluster"
	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/precopy"
	"github.com/migrated/migrated/rebalance"
	"github.com/migrated/migrated/transport"
)

// The rebalancer: every period (jittered) the agent builds a rebalance.View
// from the cluster members and its own managed tasks, asks the policy for
// at most one move, has the destination admit it, and runs it through the
// same move path as POST /v1/moves.
//
// Peers talk to each other's rebalancer over TCP on the QUIC address (same
// IP and port number, TCP instead of UDP): one JSON request and one JSON
// answer per connection, each with an HMAC-SHA256 of the cluster secret
// and a timestamp. The requests are: status (the peer's measured CPU use:
// inside namespace hosts /proc/loadavg is the whole machine's, so each node
// measures its own processes), admit (the destination's rebalance.Admit on
// its own view, which then counts the task as arriving), arrived (the
// source tells the destination the move id and PID of a managed task it
// resumed, so that it is managed there too) and release (an admitted move
// failed).

// RebalanceSettings turn the rebalancer on and tune it.
type RebalanceSettings struct {
	Enabled  bool
	Interval time.Duration
	Cooldown time.Duration // 0: rebalance.DefaultConfig's
}

// RebalanceDefaults are the settings of every agent of this process; the
// `migrated agent` flags --rebalance, --rebalance-interval and
// --rebalance-cooldown set them.
var RebalanceDefaults = RebalanceSettings{Interval: 10 * time.Second}

func init() {
	RegisterService(Service{Name: "rebalance", Start: startRebalancer})
	RegisterEndpoint("GET /v1/rebalance/snapshot", getRebalanceSnapshot)
}

type rebalancer struct {
	a      *Agent
	set    RebalanceSettings
	policy *rebalance.Policy
	ln     net.Listener
	mu     sync.Mutex
	// reserved: tasks this node admitted and that have not arrived yet,
	// or arrived less than settle ago.
	reserved map[string]reservation
	// departed: tasks that left by a move less than settle ago.
	departed []reservation
}

type reservation struct {
	task    rebalance.Task
	expires time.Time
	// arrived: the task runs here now; the reservation stays until the
	// measured load has a whole sample period with it in.
	arrived bool
}

// settle is how long after a move the measured host load lags: until then
// the destination counts the task's CPU as reserved and the source does
// not count it (one whole sample period after the move, with slack).
const settle = 5 * samplePeriod / 2

// reservationTTL bounds how long an admitted move counts here if its source
// never says how it ended.
const reservationTTL = 2 * time.Minute

var rebalancers sync.Map // *Agent -> *rebalancer

func rebalancerOf(a *Agent) (*rebalancer, error) {
	r, ok := rebalancers.Load(a)
	if !ok {
		return nil, fmt.Errorf("%w: the rebalance service is not running", ErrUnavailable)
	}
	return r.(*rebalancer), nil
}

func startRebalancer(ctx context.Context, a *Agent) (func(context.Context) error, error) {
	set := RebalanceDefaults
	cfg := rebalance.DefaultConfig()
	if set.Interval > 0 {
		cfg.Period = set.Interval
	}
	if set.Cooldown > 0 {
		cfg.Cooldown = set.Cooldown
	}
	pol, err := rebalance.New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", a.QUICAddr().String())
	if err != nil {
		return nil, fmt.Errorf("rebalance peer listener: %w", err)
	}
	r := &rebalancer{a: a, set: set, policy: pol, ln: ln, reserved: map[string]reservation{}}
	rebalancers.Store(a, r)
	rctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.servePeer(c)
			}()
		}
	}()
	if set.Enabled {
		a.Logger().Info("rebalancing on", "period", cfg.Period, "cooldown", cfg.Cooldown)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.loop(rctx)
		}()
	}
	return func(context.Context) error {
		cancel()
		ln.Close()
		wg.Wait()
		rebalancers.Delete(a)
		return nil
	}, nil
}

func (r *rebalancer) loop(ctx context.Context) {
	cfg := r.policy.Config()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(cfg.NextRun(rand.Float64())):
		}
		r.step(ctx)
	}
}

// step is one period: plan, admit, move.
func (r *rebalancer) step(ctx context.Context) {
	log := r.a.Logger().With("role", "rebalance")
	v, err := r.view(ctx)
	if err != nil {
		log.Warn("no view", "err", err)
		return
	}
	plan := r.policy.Plan(v)
	self := r.a.Options().Name
	p := plan.For(self)
	if p == nil {
		for _, h := range plan.Holds {
			if h.Node == self {
				log.Info("hot, no move", "util", h.Util, "why", h.Why)
			}
		}
		return
	}
	var task *rebalance.Task
	for i := range v.Tasks {
		if v.Tasks[i].ID == p.Task {
			task = &v.Tasks[i]
		}
	}
	if task == nil {
		return
	}
	log.Info("proposing a move", "task", p.Task, "to", p.Target, "why", p.Why)
	var ans peerAnswer
	if err := r.ask(ctx, p.Target, peerRequest{Op: "admit", Task: task}, &ans); err != nil || !ans.OK {
		why := ans.Why
		if err != nil {
			why = err.Error()
		}
		log.Info("move refused", "task", p.Task, "to", p.Target, "why", why)
		r.policy.Failed(p.Task, p.Target, time.Now())
		return
	}
	rep, err := r.move(ctx, task, p.Target)
	if err != nil {
		log.Warn("move failed", "task", p.Task, "to", p.Target, "err", err)
		r.policy.Failed(p.Task, p.Target, time.Now())
		_ = r.ask(ctx, p.Target, peerRequest{Op: "release", Task: task}, &ans)
		return
	}
	r.policy.Moved(p.Task, p.Target)
	r.mu.Lock()
	r.departed = append(r.departed, reservation{task: *task, expires: time.Now().Add(settle)})
	r.mu.Unlock()
	log.Info("moved", "task", p.Task, "to", p.Target, "new_pid", rep.NewPID, "downtime_ms", rep.DowntimeMs, "why", p.Why)
	if rep.SignalsLost > 0 || rep.Warning != "" {
		log.Warn("after the move", "task", p.Task, "signals_forwarded", rep.SignalsForwarded, "signals_lost", rep.SignalsLost, "warning", rep.Warning)
	}
	r.handOver(ctx, task.ID, p.Target, rep)
}

// handOver tells the destination of a move that the task it resumed is a
// managed task (it checks the move id and PID against its own record).
func (r *rebalancer) handOver(ctx context.Context, name, target string, rep *move.Report) {
	var ans peerAnswer
	t := &rebalance.Task{ID: name}
	if err := r.ask(ctx, target, peerRequest{Op: "arrived", Task: t, MoveID: rep.MoveID, PID: rep.NewPID}, &ans); err != nil || !ans.OK {
		r.a.Logger().Warn("the destination did not take the task as managed", "task", name, "to", target, "err", err, "why", ans.Why)
	}
}

// managedMoved is for the move path of POST /v1/moves: after a successful
// move of pid to host, a managed task stays managed on the destination.
// (agent/moves.go does not call it yet: a task moved by hand stops being
// managed.)
func managedMoved(a *Agent, pid int, host string, rep *move.Report) {
	ms, err := managedOf(a)
	if err != nil {
		return
	}
	var name string
	for _, t := range ms.list() {
		if t.PID == pid {
			name = t.Name
		}
	}
	r, err := rebalancerOf(a)
	if name == "" || err != nil {
		return
	}
	ms.remove(name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.handOver(ctx, name, host, rep)
}

// move runs the task's move to target through the move path POST /v1/moves
// uses (move.Source over the agent's transport), listed in GET /v1/moves.
func (r *rebalancer) move(ctx context.Context, t *rebalance.Task, target string) (*move.Report, error) {
	a := r.a
	mv, err := moverOf(a)
	if err != nil {
		return nil, err
	}
	ms, err := managedOf(a)
	if err != nil {
		return nil, err
	}
	_, addr, err := peerFor(a, target)
	if err != nil {
		return nil, err
	}
	var pid int
	for _, mt := range ms.list() {
		if mt.Name == t.ID {
			pid = mt.PID
		}
	}
	if pid == 0 {
		return nil, fmt.Errorf("%w: task %s is gone", ErrNotFound, t.ID)
	}
	dial := func(ctx context.Context) (*transport.Session, error) { return mv.tr.Dial(ctx, addr) }
	st := &MoveStatus{PID: pid, Host: target, State: "pre-copy", Started: time.Now()}
	key := fmt.Sprintf("%d@%d", pid, st.Started.UnixNano())
	mv.mu.Lock()
	mv.inflight[key] = st
	mv.mu.Unlock()
	ms.setMoving(t.ID, target)
	defer func() {
		mv.mu.Lock()
		delete(mv.inflight, key)
		mv.mu.Unlock()
	}()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	s, err := dial(dctx)
	cancel()
	if err != nil {
		ms.setMoving(t.ID, "")
		return nil, fmt.Errorf("connect to %s: %w", target, err)
	}
	defer s.Close()
	rep, err := move.Source(context.WithoutCancel(ctx), s, pid, move.SourceOptions{
		Host:       target,
		Controller: precopy.ControllerConfig{DowntimeLimit: r.policy.Config().DowntimeLimit},
		Progress: func(p precopy.Progress) {
			mv.mu.Lock()
			pp := p
			st.Progress = &pp
			mv.mu.Unlock()
		},
		Redial: dial,
		Log:    a.Logger().With("role", "source", "pid", pid, "task", t.ID),
	})
	if err != nil {
		ms.setMoving(t.ID, "")
		return nil, err
	}
	ms.remove(t.ID)
	return rep, nil
}

// view is what this node's policy decides on now.
func (r *rebalancer) view(ctx context.Context) (*rebalance.View, error) {
	a := r.a
	ms, err := managedOf(a)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	v := &rebalance.View{Now: now}
	type result struct {
		i    int
		load float64
		ok   bool
	}
	members := a.Members()
	results := make(chan result, len(members))
	n := 0
	for i, mb := range members {
		if mb.State != cluster.StateAlive || mb.Meta == nil || mb.Meta.CPUs == 0 {
			continue
		}
		node := rebalance.Node{ID: mb.Name, Caps: &mb.Meta.Caps, CPUs: float64(mb.Meta.CPUs),
			FreeMemory: mb.Meta.FreeMemory, NoTarget: mb.Meta.Leaving}
		v.Nodes = append(v.Nodes, node)
		idx := len(v.Nodes) - 1
		if mb.Local {
			v.Nodes[idx].Caps = a.Caps()
			v.Nodes[idx].Load = r.localLoad(now)
			continue
		}
		n++
		go func(i int, name string) {
			qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			var ans peerAnswer
			err := r.ask(qctx, name, peerRequest{Op: "status"}, &ans)
			results <- result{i, ans.Load, err == nil}
		}(idx, mb.Name)
		_ = i
	}
	var drop []int
	for ; n > 0; n-- {
		res := <-results
		if res.ok {
			v.Nodes[res.i].Load = res.load
		} else {
			drop = append(drop, res.i)
		}
	}
	// A node whose load we do not know is left out of the view.
	for _, i := range drop {
		v.Nodes[i].CPUs = 0
	}
	self := a.Options().Name
	for _, mt := range ms.list() {
		man, err := r.manifest(ms, mt.Name, mt.PID)
		if err != nil {
			a.Logger().Debug("no manifest", "task", mt.Name, "err", err)
			continue
		}
		v.Tasks = append(v.Tasks, rebalance.Task{ID: mt.Name, Node: self, Manifest: man, CPU: mt.CPU,
			RSS: mt.RSS, LastMoved: mt.LastMoved, MovingTo: mt.MovingTo})
	}
	return v, nil
}

// manifest returns the task's manifest, read once (freezing the task for
// its registers) and then kept.
func (r *rebalancer) manifest(ms *managedSet, name string, pid int) (*image.Manifest, error) {
	ms.mu.Lock()
	t := ms.tasks[name]
	var man *image.Manifest
	if t != nil {
		man = t.manifest
	}
	ms.mu.Unlock()
	if man != nil {
		return man, nil
	}
	man, err := move.ManifestOf(pid)
	if err != nil {
		return nil, err
	}
	ms.mu.Lock()
	if t := ms.tasks[name]; t != nil {
		t.manifest = man
	}
	ms.mu.Unlock()
	return man, nil
}

// localLoad is the node's measured CPU use plus the moves it admitted that
// have not arrived yet (other nodes see the reservation before the task).
func (r *rebalancer) localLoad(now time.Time) float64 {
	load := 0.0
	if ms, err := managedOf(r.a); err == nil {
		load = ms.load()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, res := range r.reserved {
		if now.After(res.expires) {
			delete(r.reserved, id)
			continue
		}
		load += res.task.CPU
	}
	kept := r.departed[:0]
	for _, d := range r.departed {
		if now.Before(d.expires) {
			load -= d.task.CPU
			kept = append(kept, d)
		}
	}
	r.departed = kept
	return max(load, 0)
}

func getRebalanceSnapshot(a *Agent, req *http.Request) (any, error) {
	r, err := rebalancerOf(a)
	if err != nil {
		return nil, err
	}
	v, err := r.view(req.Context())
	if err != nil {
		return nil, err
	}
	return &rebalance.Snapshot{Self: a.Options().Name, Config: r.policy.Config(), View: *v, Backoffs: r.policy.Backoffs()}, nil
}

// The peer protocol.

type peerRequest struct {
	Op     string          `json:"op"`
	From   string          `json:"from,omitempty"`
	Task   *rebalance.Task `json:"task,omitempty"`
	MoveID string          `json:"move_id,omitempty"`
	PID    int             `json:"pid,omitempty"`
}

type peerAnswer struct {
	OK   bool    `json:"ok"`
	Why  string  `json:"why,omitempty"`
	Load float64 `json:"load,omitempty"`
}

// peerEnvelope is one message on the wire: the JSON body, its time, and an
// HMAC-SHA256 over both with the cluster secret (empty when insecure).
type peerEnvelope struct {
	Body   json.RawMessage `json:"body"`
	UnixNs int64           `json:"unix_ns"`
	MAC    string          `json:"mac,omitempty"`
}

// peerMaxMessage bounds a peer message; peerSkew bounds the clock
// difference (and so the replay window) accepted.
const (
	peerMaxMessage = 1 << 20
	peerSkew       = 30 * time.Second
)

// ErrPeerAuth: a peer message without a valid MAC or outside the time window.
var ErrPeerAuth = errors.New("rebalance peer message not authenticated")

func peerMAC(secret []byte, body []byte, unixNs int64) string {
	h := hmac.New(sha256.New, secret)
	fmt.Fprintf(h, "migrated-rebalance-v1 %d ", unixNs)
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

func sealPeer(secret []byte, v any, now time.Time) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	e := peerEnvelope{Body: body, UnixNs: now.UnixNano()}
	if secret != nil {
		e.MAC = peerMAC(secret, body, e.UnixNs)
	}
	b, err := json.Marshal(e)
	return append(b, '\n'), err
}

// OpenPeer checks one envelope (a line from a peer) and decodes its body
// into v.
func OpenPeer(secret []byte, line []byte, now time.Time, v any) error {
	if len(line) > peerMaxMessage {
		return fmt.Errorf("%w: %d bytes", ErrBadRequest, len(line))
	}
	var e peerEnvelope
	if err := json.Unmarshal(line, &e); err != nil {
		return fmt.Errorf("%w: envelope: %v", ErrBadRequest, err)
	}
	if secret != nil {
		want := peerMAC(secret, e.Body, e.UnixNs)
		if !hmac.Equal([]byte(want), []byte(e.MAC)) {
			return fmt.Errorf("%w: bad MAC", ErrPeerAuth)
		}
		if d := now.Sub(time.Unix(0, e.UnixNs)); d > peerSkew || d < -peerSkew {
			return fmt.Errorf("%w: time off by %v", ErrPeerAuth, d)
		}
	}
	if err := json.Unmarshal(e.Body, v); err != nil {
		return fmt.Errorf("%w: body: %v", ErrBadRequest, err)
	}
	return nil
}

// ask sends one request to node's rebalancer and reads the answer.
func (r *rebalancer) ask(ctx context.Context, node string, req peerRequest, ans *peerAnswer) error {
	mb, _, err := peerFor(r.a, node)
	if err != nil {
		return err
	}
	req.From = r.a.Options().Name
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", mb.Meta.QUIC.String())
	if err != nil {
		return fmt.Errorf("%w: rebalancer of %s: %v", ErrUnavailable, node, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	msg, err := sealPeer(r.a.Secret(), req, time.Now())
	if err != nil {
		return err
	}
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("rebalancer of %s: %w", node, err)
	}
	line, err := bufio.NewReader(io.LimitReader(c, peerMaxMessage)).ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("rebalancer of %s: %w", node, err)
	}
	return OpenPeer(r.a.Secret(), line, time.Now(), ans)
}

func (r *rebalancer) servePeer(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(c, peerMaxMessage)).ReadBytes('\n')
	if err != nil {
		return
	}
	var req peerRequest
	if err := OpenPeer(r.a.Secret(), line, time.Now(), &req); err != nil {
		r.a.Logger().Warn("rebalance peer request refused", "peer", c.RemoteAddr().String(), "err", err)
		return
	}
	ans := r.answer(req)
	if msg, err := sealPeer(r.a.Secret(), ans, time.Now()); err == nil {
		c.Write(msg)
	}
}

func (r *rebalancer) answer(req peerRequest) peerAnswer {
	log := r.a.Logger().With("role", "rebalance", "peer", req.From)
	now := time.Now()
	switch req.Op {
	case "status":
		return peerAnswer{OK: true, Load: r.localLoad(now)}
	case "admit":
		if req.Task == nil {
			return peerAnswer{Why: "no task"}
		}
		t := *req.Task
		t.Node = req.From
		self := r.a.Options().Name
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		v, err := r.view(ctx)
		cancel()
		if err != nil {
			return peerAnswer{Why: err.Error()}
		}
		// The moves admitted and not arrived are tasks moving here (the
		// policy adds their CPU to this node: take it out of the measured
		// load with reservations first); an arrived one is a task of ours
		// already.
		r.mu.Lock()
		for _, res := range r.reserved {
			if res.arrived {
				continue
			}
			rt := res.task
			rt.MovingTo = self
			v.Tasks = append(v.Tasks, rt)
			for i := range v.Nodes {
				if v.Nodes[i].ID == self {
					v.Nodes[i].Load -= rt.CPU
				}
			}
		}
		r.mu.Unlock()
		if err := r.policy.Admit(v, &t, self); err != nil {
			log.Info("refused an incoming move", "task", t.ID, "why", err)
			return peerAnswer{Why: err.Error()}
		}
		r.mu.Lock()
		r.reserved[req.From+"/"+t.ID] = reservation{task: t, expires: now.Add(reservationTTL)}
		r.mu.Unlock()
		log.Info("admitted an incoming move", "task", t.ID, "cpu", t.CPU, "rss", t.RSS)
		return peerAnswer{OK: true}
	case "release":
		if req.Task != nil {
			r.mu.Lock()
			delete(r.reserved, req.From+"/"+req.Task.ID)
			r.mu.Unlock()
		}
		return peerAnswer{OK: true}
	case "arrived":
		if req.Task == nil {
			return peerAnswer{Why: "no task"}
		}
		mv, err := moverOf(r.a)
		if err != nil {
			return peerAnswer{Why: err.Error()}
		}
		// Only a move this node itself resumed, with that PID, makes a
		// task managed here.
		st, pid := mv.outcomes.Get(req.MoveID)
		if st != image.Outcome_RUNNING || int(pid) != req.PID {
			return peerAnswer{Why: fmt.Sprintf("move %s: outcome %v pid %d, not running pid %d here", req.MoveID, st, pid, req.PID)}
		}
		ms, err := managedOf(r.a)
		if err != nil {
			return peerAnswer{Why: err.Error()}
		}
		mt := &ManagedTask{Name: req.Task.ID, PID: req.PID, Started: now, LastMoved: now, MovedFrom: req.From}
		if err := ms.add(mt); err != nil {
			return peerAnswer{Why: err.Error()}
		}
		r.mu.Lock()
		key := req.From + "/" + req.Task.ID
		if res, ok := r.reserved[key]; ok {
			res.arrived, res.expires = true, now.Add(settle)
			r.reserved[key] = res
		}
		r.mu.Unlock()
		log.Info("managed task arrived", "task", mt.Name, "pid", mt.PID, "move", req.MoveID)
		return peerAnswer{OK: true}
	}
	return peerAnswer{Why: fmt.Sprintf("unknown op %q", req.Op)}
}
