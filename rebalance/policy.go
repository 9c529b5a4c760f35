package rebalance

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/migrated/migrated/compat"
)

// Policy decides moves. Its only state is the record of failed moves; it is
// safe for concurrent use.
type Policy struct {
	cfg Config

	mu       sync.Mutex
	failures map[pair]*failure
}

type pair struct{ task, target string }

type failure struct {
	count int
	until time.Time
}

// New returns a policy with cfg, which must pass Validate. A nil
// cfg.Compatible becomes DefaultCompatible.
func New(cfg Config) (*Policy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Compatible == nil {
		cfg.Compatible = DefaultCompatible
	}
	return &Policy{cfg: cfg, failures: make(map[pair]*failure)}, nil
}

// Config returns the policy's configuration.
func (p *Policy) Config() Config { return p.cfg }

// Proposal is one move the policy proposes: Task from Source to Target.
type Proposal struct {
	Task   string  `json:"task"`
	Source string  `json:"source"`
	Target string  `json:"target"`
	CPU    float64 `json:"cpu"`
	RSS    uint64  `json:"rss"`
	// Utilisations of source and target before and after the move (moves
	// in flight and earlier proposals of the same plan counted as done).
	SourceUtil      float64 `json:"source_util"`
	SourceUtilAfter float64 `json:"source_util_after"`
	TargetUtil      float64 `json:"target_util"`
	TargetUtilAfter float64 `json:"target_util_after"`
	// PoolMean is the mean utilisation of the nodes the task can run on;
	// the target's watermarks are relative to it.
	PoolMean float64 `json:"pool_mean"`
	// Gain is how much the higher utilisation of the pair falls.
	Gain float64 `json:"gain"`
	// Cost of the move in the same unit (Config.CostPerGiB, CostPerDowntimeSecond).
	Cost float64 `json:"cost"`
	// Levelling: no target had room under the ceiling, and the target ends
	// no hotter than the source (Config.Levelling).
	Levelling bool `json:"levelling,omitempty"`
	// Score = Gain - Cost, at least Config.MinGain.
	Score    float64      `json:"score"`
	Estimate MoveEstimate `json:"estimate"`
	// Why is a sentence for a person.
	Why string `json:"why"`
}

// Hold is a hot node that proposes nothing this period, and why.
type Hold struct {
	Node string  `json:"node"`
	Util float64 `json:"util"`
	Why  string  `json:"why"`
}

// Plan is the policy's answer for one View.
type Plan struct {
	Now time.Time `json:"now"`
	// MeanUtil is sum(Load)/sum(CPUs) of all nodes; a node above
	// HotUtil = High*MeanUtil is hot.
	MeanUtil float64 `json:"mean_util"`
	HotUtil  float64 `json:"hot_util"`
	// Proposals, at most one per source node, in the order hot nodes were
	// served (hottest first).
	Proposals []Proposal `json:"proposals"`
	// Holds: hot nodes without a proposal.
	Holds []Hold `json:"holds"`
}

// For returns the proposal whose source is node, or nil.
func (pl *Plan) For(node string) *Proposal {
	for i := range pl.Proposals {
		if pl.Proposals[i].Source == node {
			return &pl.Proposals[i]
		}
	}
	return nil
}

// Failed records that the move of task to target failed (or was refused) at
// time at: the pair is avoided for Backoff, doubled for every further
// failure, at most MaxBackoff.
func (p *Policy) Failed(task, target string, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := pair{task, target}
	f := p.failures[k]
	if f == nil {
		f = &failure{}
		p.failures[k] = f
	}
	f.count++
	d := p.cfg.Backoff
	for i := 1; i < f.count && d > 0 && d < p.cfg.MaxBackoff; i++ {
		d *= 2
	}
	if d > p.cfg.MaxBackoff {
		d = p.cfg.MaxBackoff
	}
	f.until = at.Add(d)
}

// Moved records that the move of task to target succeeded: the pair's
// failure record is forgotten.
func (p *Policy) Moved(task, target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.failures, pair{task, target})
}

// BackoffUntil returns until when the pair is avoided (zero if it is not).
func (p *Policy) BackoffUntil(task, target string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.failures[pair{task, target}]; f != nil {
		return f.until
	}
	return time.Time{}
}

// prune forgets failure records that ended more than MaxBackoff ago, so the
// record stays bounded and an old failure stops doubling new backoffs.
func (p *Policy) prune(now time.Time) {
	for k, f := range p.failures {
		if now.Sub(f.until) > p.cfg.MaxBackoff {
			delete(p.failures, k)
		}
	}
}

// nodeState is a node during planning.
type nodeState struct {
	n     *Node
	load  float64 // moves in flight and earlier proposals counted as done
	free  float64
	class int  // index in planner.classes, -1 if never a target
	busy  bool // a move out of it is in flight
	tasks []int
}

func (ns *nodeState) util() float64 { return ns.load / ns.n.CPUs }

// classState is a capability class: nodes with equal HostCaps, which decide
// alike for any manifest, so compat runs once per (task, class), not per
// node.
type classState struct {
	caps      *compat.HostCaps
	members   []int
	load, cpu float64
}

type planner struct {
	p       *Policy
	v       *View
	nodes   []nodeState
	byID    map[string]int
	mean    float64 // sum(Load)/sum(CPUs) of all nodes
	hot     float64 // High * mean
	classes []classState
	compat  map[[2]int]bool // (task index, class) -> compatible
	sig     []int           // scratch: the classes of one task's pool
	fit     []fit           // scratch: the targets one task fits on
	fitRoom float64
}

// Plan decides this period's moves for the whole cluster. Every node can run
// it on its own view and execute only Plan.For(itself).
func (p *Policy) Plan(v *View) *Plan {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prune(v.Now)

	pl := p.newPlanner(v)
	out := &Plan{Now: v.Now, MeanUtil: pl.mean, HotUtil: pl.hot}
	if pl.mean <= 0 {
		return out
	}
	var hot []int
	for i := range pl.nodes {
		ns := &pl.nodes[i]
		if u := ns.util(); u > pl.hot && u > p.cfg.MinHotUtil {
			hot = append(hot, i)
		}
	}
	sort.Slice(hot, func(a, b int) bool {
		na, nb := &pl.nodes[hot[a]], &pl.nodes[hot[b]]
		if ua, ub := na.util(), nb.util(); ua != ub {
			return ua > ub
		}
		return na.n.ID < nb.n.ID
	})
	for _, s := range hot {
		prop, hold := pl.serve(s)
		if prop != nil {
			out.Proposals = append(out.Proposals, *prop)
		} else {
			out.Holds = append(out.Holds, *hold)
		}
	}
	return out
}

// newPlanner builds the planning state: nodes by ID, moves in flight
// applied, capability classes with their load.
func (p *Policy) newPlanner(v *View) *planner {
	pl := &planner{p: p, v: v, byID: make(map[string]int, len(v.Nodes)), compat: make(map[[2]int]bool)}
	pl.nodes = make([]nodeState, 0, len(v.Nodes))
	var sumLoad, sumCPU float64
	for i := range v.Nodes {
		n := &v.Nodes[i]
		if !(n.CPUs > 0) {
			continue
		}
		if _, dup := pl.byID[n.ID]; dup {
			continue // a view with a duplicated ID: the first one wins
		}
		pl.byID[n.ID] = len(pl.nodes)
		pl.nodes = append(pl.nodes, nodeState{n: n, load: n.Load, free: float64(n.FreeMemory), class: -1})
		sumLoad += n.Load
		sumCPU += n.CPUs
	}
	if sumCPU > 0 {
		pl.mean = sumLoad / sumCPU
	}
	pl.hot = p.cfg.High * pl.mean

	for i := range v.Tasks {
		t := &v.Tasks[i]
		si, ok := pl.byID[t.Node]
		if !ok {
			continue
		}
		src := &pl.nodes[si]
		if t.MovingTo == "" {
			src.tasks = append(src.tasks, i)
			continue
		}
		src.busy = true
		src.load -= t.CPU
		if di, ok := pl.byID[t.MovingTo]; ok {
			pl.nodes[di].load += t.CPU
			pl.nodes[di].free -= float64(t.RSS)
		}
	}

	byPtr := make(map[*compat.HostCaps]int)
	byKey := make(map[string]int)
	for i := range pl.nodes {
		ns := &pl.nodes[i]
		c := ns.n.Caps
		if c == nil || ns.n.NoTarget {
			continue
		}
		cls, ok := byPtr[c]
		if !ok {
			key, err := json.Marshal(c)
			if err != nil {
				continue // cannot happen for HostCaps; never a target then
			}
			if cls, ok = byKey[string(key)]; !ok {
				cls = len(pl.classes)
				byKey[string(key)] = cls
				pl.classes = append(pl.classes, classState{caps: c})
			}
			byPtr[c] = cls
		}
		ns.class = cls
		cs := &pl.classes[cls]
		cs.members = append(cs.members, i)
		cs.load += ns.load
		cs.cpu += ns.n.CPUs
	}
	return pl
}

func (pl *planner) compatible(ti, cls int) bool {
	k := [2]int{ti, cls}
	ok, seen := pl.compat[k]
	if !seen {
		ok = pl.p.cfg.Compatible(pl.v.Tasks[ti].Manifest, pl.classes[cls].caps)
		pl.compat[k] = ok
	}
	return ok
}

// pool returns the classes task ti can run on (in pl.sig, valid until the
// next call) and the mean utilisation of those nodes and of its own node s:
// the watermarks of a move are relative to it, since a task can only even
// out among the nodes it can run on.
func (pl *planner) pool(s, ti int) (sig []int, mean float64) {
	pl.sig = pl.sig[:0]
	src := &pl.nodes[s]
	load, cpu := src.load, src.n.CPUs
	for cls := range pl.classes {
		if pl.compatible(ti, cls) {
			pl.sig = append(pl.sig, cls)
			load += pl.classes[cls].load
			cpu += pl.classes[cls].cpu
			if cls == src.class {
				load -= src.load
				cpu -= src.n.CPUs
			}
		}
	}
	if cpu > 0 {
		mean = load / cpu
	}
	return pl.sig, mean
}

// target is the best target for task ti out of node s among the classes of
// sig: below Low*mean now, at most Ceiling*mean with the task, the memory
// for it, not backing off; of those, the ones with at least (1-Spread) times
// the most headroom under Ceiling*mean are tied and the highest rendezvous
// hash of (task, node) wins. -1 if none; candidates counts the compatible
// nodes below Low*mean.
//
// With level > 0 (a levelling move, Config.Levelling) a target fits when it
// ends at or below level, the source's utilisation after the move, instead
// of under the ceiling.
func (pl *planner) target(s, ti int, sig []int, mean, level float64) (best, candidates int) {
	cfg := &pl.p.cfg
	t := &pl.v.Tasks[ti]
	need := float64(t.RSS) + float64(cfg.MemoryReserve)
	low, ceil := cfg.Low*mean, cfg.Ceiling*mean
	pl.fit = pl.fit[:0]
	bestRoom := math.Inf(-1)
	for _, cls := range sig {
		for _, d := range pl.classes[cls].members {
			ns := &pl.nodes[d]
			if d == s || ns.util() >= low {
				continue
			}
			candidates++
			room := ceil*ns.n.CPUs - ns.load
			fits := room >= t.CPU
			if level > 0 {
				fits = (ns.load+t.CPU)/ns.n.CPUs <= level
			}
			if !fits || ns.free < need || pl.backedOff(t.ID, ns.n.ID) {
				continue
			}
			pl.fit = append(pl.fit, fit{d, room})
			bestRoom = math.Max(bestRoom, room)
		}
	}
	best = -1
	var bestHash uint64
	for _, f := range pl.fit {
		if f.room < (1-cfg.Spread)*bestRoom {
			continue
		}
		id := pl.nodes[f.node].n.ID
		h := rendezvous(t.ID, id)
		if cfg.Spread == 0 {
			h = 0 // the most headroom, then node ID
		}
		if best < 0 || betterTarget(f.room, h, id, pl.fitRoom, bestHash, pl.nodes[best].n.ID, cfg.Spread > 0) {
			best, bestHash, pl.fitRoom = f.node, h, f.room
		}
	}
	return best, candidates
}

// fit is a node a task fits on, with its headroom.
type fit struct {
	node int
	room float64
}

// betterTarget orders tied targets: with spread, the higher rendezvous hash;
// without, more headroom; then node ID.
func betterTarget(room float64, h uint64, id string, bRoom float64, bh uint64, bID string, spread bool) bool {
	if spread && h != bh {
		return h > bh
	}
	if !spread && room != bRoom {
		return room > bRoom
	}
	return id < bID
}

// rendezvous is the FNV-1a hash of task and node: the same pair always
// ranks the same, and different tasks rank the same nodes differently.
func rendezvous(task, node string) uint64 {
	h := uint64(14695981039346656037)
	mix := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= 1099511628211
		}
	}
	mix(task)
	h ^= 0xff
	h *= 1099511628211
	mix(node)
	return h
}

func (pl *planner) backedOff(task, target string) bool {
	f := pl.p.failures[pair{task, target}]
	return f != nil && pl.v.Now.Before(f.until)
}

// serve finds the move out of hot node s, applies it to the planning state
// and returns it; or says why there is none.
func (pl *planner) serve(s int) (*Proposal, *Hold) {
	cfg := &pl.p.cfg
	src := &pl.nodes[s]
	us := src.util()
	hotWhy := fmt.Sprintf("node %s is hot (util %.2f > high %.2f = %.2f x mean %.2f)", src.n.ID, us, pl.hot, cfg.High, pl.mean)
	if src.busy {
		return nil, &Hold{Node: src.n.ID, Util: us, Why: hotWhy + " but a move out of it is in flight"}
	}
	bw := src.n.Bandwidth
	if !(bw > 0) {
		bw = cfg.DefaultBandwidth
	}
	var (
		best, bestLevel                     *Proposal
		bestLevelCands                      int
		bestCands                           int
		nManifest, nCooling, nIdle, nNoConv int
		nNoPool, nEven, nNoTarget, nLow     int
		bestLow                             = math.Inf(-1)
	)
	// Candidates with an upper bound of their score: the gain of a move
	// is at most the task's share of the source (u_src - u_src'). Served
	// best bound first, the loop stops as soon as no later task can reach
	// the best score found, which spares most compat decisions.
	type candidate struct {
		ti       int
		est      MoveEstimate
		cost, ub float64
	}
	cands := make([]candidate, 0, len(src.tasks))
	for _, ti := range src.tasks {
		t := &pl.v.Tasks[ti]
		switch {
		case t.Manifest == nil:
			nManifest++
			continue
		case !t.LastMoved.IsZero() && pl.v.Now.Sub(t.LastMoved) < cfg.Cooldown:
			nCooling++
			continue
		case !(t.CPU > 0):
			nIdle++
			continue
		}
		est := EstimateMove(t.RSS, t.DirtyRate, bw, cfg.DowntimeLimit, cfg.MaxRounds)
		if !est.Converges {
			nNoConv++
			continue
		}
		cost := cfg.CostPerGiB*est.Bytes/(1<<30) + cfg.CostPerDowntimeSecond*est.Downtime.Seconds()
		cands = append(cands, candidate{ti, est, cost, t.CPU/src.n.CPUs - cost})
	}
	sort.Slice(cands, func(a, b int) bool {
		if cands[a].ub != cands[b].ub {
			return cands[a].ub > cands[b].ub
		}
		return pl.v.Tasks[cands[a].ti].ID < pl.v.Tasks[cands[b].ti].ID
	})
	for i, c := range cands {
		if c.ub < cfg.MinGain {
			nLow += len(cands) - i
			bestLow = math.Max(bestLow, c.ub)
			break
		}
		if best != nil && c.ub < best.Score {
			break
		}
		ti, t, est, cost := c.ti, &pl.v.Tasks[c.ti], c.est, c.cost
		sig, pm := pl.pool(s, ti)
		switch {
		case len(sig) == 0:
			nNoPool++
			continue
		case us <= cfg.High*pm:
			nEven++
			continue
		}
		level := 0.0
		d, nTargets := pl.target(s, ti, sig, pm, 0)
		if d < 0 && cfg.Levelling {
			level = (src.load - t.CPU) / src.n.CPUs
			d, nTargets = pl.target(s, ti, sig, pm, level)
		}
		if d < 0 {
			nNoTarget++
			continue
		}
		dst := &pl.nodes[d]
		usAfter := (src.load - t.CPU) / src.n.CPUs
		udAfter := (dst.load + t.CPU) / dst.n.CPUs
		gain := us - math.Max(usAfter, udAfter)
		score := gain - cost
		if score < cfg.MinGain {
			nLow++
			bestLow = math.Max(bestLow, score)
			continue
		}
		cand := &Proposal{
			Task: t.ID, Source: src.n.ID, Target: dst.n.ID, CPU: t.CPU, RSS: t.RSS,
			SourceUtil: us, SourceUtilAfter: usAfter, TargetUtil: dst.util(), TargetUtilAfter: udAfter,
			PoolMean: pm, Gain: gain, Cost: cost, Score: score, Estimate: est, Levelling: level > 0,
		}
		switch {
		case cand.Levelling:
			if bestLevel == nil || betterProposal(cand, bestLevel) {
				bestLevel, bestLevelCands = cand, nTargets
			}
		case best == nil || betterProposal(cand, best):
			best, bestCands = cand, nTargets
		}
	}
	if best == nil && bestLevel != nil {
		// Only when no move keeps its target under the ceiling.
		best, bestCands = bestLevel, bestLevelCands
	}
	if best == nil {
		var parts []string
		add := func(n int, what string) {
			if n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, what))
			}
		}
		add(nCooling, fmt.Sprintf("are cooling down (%v after a move)", cfg.Cooldown))
		add(nNoConv, fmt.Sprintf("would not converge within %v", cfg.DowntimeLimit))
		add(nNoPool, "run on no other node of the view")
		add(nEven, fmt.Sprintf("can only go where the load is as high (node below %.2f x their pool's mean)", cfg.High))
		add(nNoTarget, fmt.Sprintf("have no compatible target below %.2f x their pool's mean with room under %.2f x", cfg.Low, cfg.Ceiling))
		if nLow > 0 {
			add(nLow, fmt.Sprintf("gain too little (best score %.3f < %.3f)", bestLow, cfg.MinGain))
		}
		add(nIdle, "use no CPU")
		add(nManifest, "have no manifest")
		why := hotWhy + " but proposes nothing: "
		if len(parts) == 0 {
			why += "it has no managed tasks"
		} else {
			why += "of its managed tasks " + strings.Join(parts, ", ")
		}
		return nil, &Hold{Node: src.n.ID, Util: us, Why: why}
	}
	d := pl.byID[best.Target]
	pm := best.PoolMean
	level := ""
	if best.Levelling {
		level = fmt.Sprintf(" (a levelling move: no compatible node has room for it under %.2f, and %s ends no hotter than %s)",
			cfg.Ceiling*pm, best.Target, best.Source)
	}
	best.Why = fmt.Sprintf("%s; task %s (%.2f CPUs, RSS %s) goes to %s, of %d compatible nodes below %.2f "+
		"(%.2f x their mean %.2f) the one with the most headroom under %.2f (%.2f CPUs): %s from %.2f to %.2f, "+
		"%s from %.2f to %.2f%s; gain %.3f, cost %.3f (%s to send in %d rounds, ~%v, downtime ~%v), score %.3f >= %.3f",
		hotWhy, best.Task, best.CPU, bytesString(float64(best.RSS)), best.Target, bestCands, cfg.Low*pm, cfg.Low, pm,
		cfg.Ceiling*pm, cfg.Ceiling*pm*pl.nodes[d].n.CPUs-pl.nodes[d].load,
		best.Source, best.SourceUtil, best.SourceUtilAfter, best.Target, best.TargetUtil, best.TargetUtilAfter, level,
		best.Gain, best.Cost, bytesString(best.Estimate.Bytes), best.Estimate.Rounds+1,
		best.Estimate.Duration.Round(time.Millisecond), best.Estimate.Downtime.Round(time.Millisecond),
		best.Score, cfg.MinGain)
	pl.apply(s, d, best)
	return best, nil
}

// betterProposal: higher score, then higher gain, then smaller RSS, then
// task ID.
func betterProposal(a, b *Proposal) bool {
	if a.Score != b.Score {
		return a.Score > b.Score
	}
	if a.Gain != b.Gain {
		return a.Gain > b.Gain
	}
	if a.RSS != b.RSS {
		return a.RSS < b.RSS
	}
	return a.Task < b.Task
}

// apply counts the proposal as done: the source loses the task, the target
// gains it, and so do their classes.
func (pl *planner) apply(s, d int, p *Proposal) {
	src, dst := &pl.nodes[s], &pl.nodes[d]
	src.load -= p.CPU
	if src.class >= 0 {
		pl.classes[src.class].load -= p.CPU
	}
	dst.load += p.CPU
	dst.free -= float64(p.RSS)
	pl.classes[dst.class].load += p.CPU
}

func bytesString(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.0f MiB", b/(1<<20))
	default:
		return fmt.Sprintf("%.0f KiB", b/(1<<10))
	}
}

// ErrRefused is wrapped by Admit's errors: the destination will not take
// the task.
var ErrRefused = errors.New("rebalance: move refused")

// Admit is the destination's check of an automatic move, made with its own
// current view, in which the moves it has already accepted are tasks with
// MovingTo set: the node exists and takes moves, the task is compatible,
// the memory is there, and the node stays at or below the Ceiling (times
// the mean utilisation of the task's pool), the rule the proposer applied
// on its possibly older view. A herd of sources that chose the same node
// on the same gossip view is refused here, one by one.
func (p *Policy) Admit(v *View, t *Task, target string) error {
	cfg := &p.cfg
	pl := p.newPlanner(v)
	di, ok := pl.byID[target]
	if !ok {
		return fmt.Errorf("%w: node %s is not in the view", ErrRefused, target)
	}
	dst := &pl.nodes[di]
	switch {
	case dst.class < 0:
		return fmt.Errorf("%w: node %s takes no moves", ErrRefused, target)
	case t.Manifest == nil || !cfg.Compatible(t.Manifest, dst.n.Caps):
		return fmt.Errorf("%w: task %s is not compatible with node %s", ErrRefused, t.ID, target)
	}
	for i := range v.Tasks {
		if o := &v.Tasks[i]; o.ID == t.ID && o.MovingTo == target {
			// Already counted as accepted: judge it as not yet there.
			dst.load -= o.CPU
			dst.free += float64(o.RSS)
			pl.classes[dst.class].load -= o.CPU
		}
	}
	if need := float64(t.RSS) + float64(cfg.MemoryReserve); dst.free < need {
		return fmt.Errorf("%w: node %s has %s free, task %s needs %s", ErrRefused, target,
			bytesString(dst.free), t.ID, bytesString(need))
	}
	// The task's pool as the proposer saw it: the nodes it can run on and
	// the one it runs on.
	var load, cpu float64
	srcClass := -1
	if si, ok := pl.byID[t.Node]; ok {
		src := &pl.nodes[si]
		load, cpu, srcClass = src.load, src.n.CPUs, src.class
	}
	for cls := range pl.classes {
		if cls == dst.class || cfg.Compatible(t.Manifest, pl.classes[cls].caps) {
			load += pl.classes[cls].load
			cpu += pl.classes[cls].cpu
			if cls == srcClass {
				si := pl.byID[t.Node]
				load -= pl.nodes[si].load
				cpu -= pl.nodes[si].n.CPUs
			}
		}
	}
	limit := cfg.Ceiling * load / cpu
	if si, ok := pl.byID[t.Node]; ok && cfg.Levelling {
		// A levelling move may lift the target up to the source's level.
		limit = math.Max(limit, (pl.nodes[si].load-t.CPU)/pl.nodes[si].n.CPUs)
	}
	if after := (dst.load + t.CPU) / dst.n.CPUs; after > limit {
		return fmt.Errorf("%w: node %s would rise to util %.2f, above %.2f = %.2f x the mean of the task's pool",
			ErrRefused, target, after, limit, cfg.Ceiling)
	}
	return nil
}
