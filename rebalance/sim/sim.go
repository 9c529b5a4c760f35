package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/migrated/migrated/compat"
	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/rebalance"
)

// Config describes one simulated run.
type Config struct {
	Nodes int    `json:"nodes"`
	Tasks int    `json:"tasks"`
	Seed  uint64 `json:"seed"`
	// Steps is the number of policy periods simulated.
	Steps int `json:"steps"`
	// ShiftEvery: every this many periods the load shifts: the hot spot
	// moves to another window of HotFraction of the nodes, and every task
	// on those nodes at that moment needs HotFactor times its CPU for the
	// whole phase (wherever it moves). Phase 0 has no hot spot: the
	// imbalance is the random initial placement.
	ShiftEvery  int     `json:"shift_every"`
	HotFraction float64 `json:"hot_fraction"`
	HotFactor   float64 `json:"hot_factor"`
	// MeanUtil is the cluster's mean utilisation without hot spot: task
	// demands are scaled to it.
	MeanUtil float64 `json:"mean_util"`
	// Noise is the relative error of each period's measured task CPU
	// (uniform in [-Noise, +Noise]).
	Noise float64 `json:"noise"`
	// FailureRate is the probability that a started move fails.
	FailureRate float64 `json:"failure_rate"`
	// Epochs is how many times per period the gossip view is refreshed:
	// a node acting at its jittered time sees the view of the last refresh.
	Epochs int `json:"epochs"`
	// OscillationWindow (periods): a task arriving on a node it left less
	// than this many periods ago counts as an oscillation.
	OscillationWindow int `json:"oscillation_window"`
	// MoveSetup is added to every move's pre-copy time (connection, stub,
	// manifest check, cutover).
	MoveSetup time.Duration `json:"move_setup"`
	// LocalViews: each node plans with what an agent has, every node from
	// gossip (loads including the moves in flight toward it, as of the
	// last refresh) and only its own tasks; nodes do not coordinate, the
	// destination's admission check (Policy.Admit) stops a herd. False:
	// every node executes its row of one plan of the whole cluster,
	// computed from all nodes and all tasks.
	LocalViews bool `json:"local_views"`
	// Converged is the max/mean goal a shift is measured against.
	Converged float64 `json:"converged"`
	// Kinds is the node mix (DefaultKinds if nil).
	Kinds []NodeKind `json:"-"`
	// Policy is the policy's config, used unchanged.
	Policy rebalance.Config `json:"policy"`
	// Check is the simulator's own compatibility check of every proposed
	// move, independent of the policy's Config.Compatible. Nil means
	// DefaultCheck (compat.Decide: ACCEPT or TRANSLATE).
	Check func(*image.Manifest, *compat.HostCaps) bool `json:"-"`
}

// DefaultConfig is a run of 1000 nodes and 20,000 tasks, three load shifts.
func DefaultConfig() Config {
	return Config{
		Nodes: 1000, Tasks: 20000, Seed: 1, Steps: 160, ShiftEvery: 40,
		HotFraction: 0.10, HotFactor: 2.5, MeanUtil: 0.5, Noise: 0.05,
		FailureRate: 0.05, Epochs: 5, OscillationWindow: 20,
		MoveSetup: 500 * time.Millisecond, Converged: 1.25, LocalViews: true,
		Policy: rebalance.DefaultConfig(),
	}
}

// Step is the state at the end of one period.
type Step struct {
	Period   int     `json:"period"`
	Phase    int     `json:"phase"`
	MaxUtil  float64 `json:"max_util"`
	MeanUtil float64 `json:"mean_util"`
	MaxMean  float64 `json:"max_mean"`
	// Moves completed, failed, refused by the destination, and started in
	// this period; in flight at its end.
	Moves    int `json:"moves"`
	Failed   int `json:"failed"`
	Refused  int `json:"refused"`
	Started  int `json:"started"`
	InFlight int `json:"in_flight"`
	// Proposals made for the nodes that acted in this period.
	Proposals int `json:"proposals"`
	// StepMS is the mean time of one policy step (a Plan of the whole
	// cluster) in this period, in milliseconds.
	StepMS float64 `json:"step_ms"`
}

// Shift is the outcome of one load phase.
type Shift struct {
	Phase       int     `json:"phase"`
	StartPeriod int     `json:"start_period"`
	HotNodes    int     `json:"hot_nodes"`
	PeakMaxMean float64 `json:"peak_max_mean"`
	// Floor is a lower bound of the max/mean any placement could reach in
	// this phase: for each compatibility pool P (the node kinds some task
	// can run on), the demand of the tasks that can run only inside P plus
	// P's background load, over P's CPUs, relative to the cluster mean. A
	// hot spot that lands mostly on a small pool (all ppc32 hosts, say) can
	// lift it above Converged; then no policy can reach Converged.
	Floor float64 `json:"floor"`
	// Goal is what the phase is judged against: Converged, or
	// Floor x Policy.High when the floor makes Converged unreachable (the
	// policy leaves nodes alone within its hysteresis band).
	Goal float64 `json:"goal"`
	// PeriodsToConverge: periods from the shift until max/mean first fell
	// below Goal (-1: never within the phase).
	PeriodsToConverge int `json:"periods_to_converge"`
	// MaxAfterConverged is the highest max/mean after that, within the phase.
	MaxAfterConverged float64 `json:"max_after_converged"`
	FinalMaxMean      float64 `json:"final_max_mean"`
	Moves             int     `json:"moves"`
	MaxMovesPerTask   int     `json:"max_moves_per_task"`
	// Holds: the hottest nodes that proposed nothing in the phase's last
	// policy step, and why (at most 5).
	Holds []rebalance.Hold `json:"holds,omitempty"`
}

// Result is a whole run.
type Result struct {
	Config       Config  `json:"config"`
	FinalMaxMean float64 `json:"final_max_mean"`
	// Moves completed (the task runs on the target).
	Moves           int `json:"moves"`
	MovesStarted    int `json:"moves_started"`
	MovesFailed     int `json:"moves_failed"`
	MovesRefused    int `json:"moves_refused"`
	MaxMovesPerTask int `json:"max_moves_per_task"`
	// MaxMovesPerTaskPerShift is the most moves of one task within one
	// load phase.
	MaxMovesPerTaskPerShift int `json:"max_moves_per_task_per_shift"`
	TasksMoved              int `json:"tasks_moved"`
	// IncompatibleMoves: proposals the simulator's own compat check refused
	// (must be 0); they are not executed.
	IncompatibleMoves int `json:"incompatible_moves"`
	// NonConvergingMoves: proposals whose pre-copy would not converge
	// within the downtime limit at the source's real bandwidth (must be 0).
	NonConvergingMoves int `json:"nonconverging_moves"`
	// Oscillations: a task arriving on a node it left less than
	// OscillationWindow periods before.
	Oscillations int `json:"oscillations"`
	// StepMS is the mean time of a policy step for the whole cluster (one
	// Plan over all nodes and all tasks), StepMSMax the longest, in
	// milliseconds; PolicySteps how many ran. With LocalViews one runs per
	// period for this measurement, and NodeStepMS (NodeStepMSMax) is the
	// mean (longest) time of one node's own step over all nodes and its
	// tasks, NodeSteps how many ran (only hot nodes need one).
	StepMS        float64 `json:"step_ms"`
	StepMSMax     float64 `json:"step_ms_max"`
	PolicySteps   int     `json:"policy_steps"`
	NodeStepMS    float64 `json:"node_step_ms,omitempty"`
	NodeStepMSMax float64 `json:"node_step_ms_max,omitempty"`
	NodeSteps     int     `json:"node_steps,omitempty"`
	Shifts        []Shift `json:"shifts"`
	Series        []Step  `json:"series"`
}

// DefaultCheck is the simulator's compatibility check when Config.Check is
// nil: compat.Decide, called here and not through the policy, answers
// ACCEPT or TRANSLATE.
func DefaultCheck(m *image.Manifest, h *compat.HostCaps) bool {
	k := compat.Decide(m, h).GetKind()
	return k == image.Verdict_ACCEPT || k == image.Verdict_TRANSLATE
}

// ErrConfig is wrapped by errors about the simulation's Config.
var ErrConfig = errors.New("sim: invalid config")

type node struct {
	id         string
	kind       int
	caps       *compat.HostCaps
	cpus       float64
	background float64
	bw         float64
	mem        uint64
}

type leave struct{ node, period int }

type task struct {
	id        string
	kind      string
	m         *image.Manifest
	pool      uint64 // bit i: the task can run on node kind i
	node      int
	demand    float64 // CPUs, without the hot spot
	mult      float64 // hot-spot factor of the current phase
	threads   int     // a task never needs more CPUs than it has threads
	rss       uint64
	dirty     float64
	lastMoved time.Time

	moving bool
	target int
	end    time.Time
	fail   bool

	moves, movesPhase int
	left              []leave
}

// poolOf returns the node kinds a manifest can run on, as a bit set,
// according to the simulator's own check.
func (r *run) poolOf(m *image.Manifest) uint64 {
	var p uint64
	for i := range r.cfg.Kinds {
		if r.check(m, r.cfg.Kinds[i].Caps) {
			p |= 1 << i
		}
	}
	return p
}

// floor computes Shift.Floor for the tasks' current demand.
func (r *run) floor() float64 {
	pools := map[uint64]bool{}
	for i := range r.tasks {
		pools[r.tasks[i].pool] = true
	}
	var kindBG, kindCPU [64]float64
	var sumLoad, sumCPU float64
	for i := range r.nodes {
		n := &r.nodes[i]
		kindBG[n.kind] += n.background
		kindCPU[n.kind] += n.cpus
		sumLoad += n.background
		sumCPU += n.cpus
	}
	for i := range r.tasks {
		sumLoad += r.tasks[i].need()
	}
	worst := 0.0
	for p := range pools {
		var load, cpu float64
		for k := range r.cfg.Kinds {
			if p&(1<<k) != 0 {
				load += kindBG[k]
				cpu += kindCPU[k]
			}
		}
		for i := range r.tasks {
			if r.tasks[i].pool&^p == 0 {
				load += r.tasks[i].need()
			}
		}
		if cpu > 0 {
			worst = math.Max(worst, load/cpu)
		}
	}
	return worst / (sumLoad / sumCPU)
}

// need is the task's CPU demand in the current phase.
func (t *task) need() float64 { return math.Min(t.demand*t.mult, float64(t.threads)) }

type run struct {
	cfg      Config
	rng      *rand.Rand
	pol      *rebalance.Policy
	check    func(*image.Manifest, *compat.HostCaps) bool
	nodes    []node
	tasks    []task
	nodeByID map[string]int
	taskByID map[string]int
	inflight []int
	view     rebalance.View
	gossip   []rebalance.Node // LocalViews: what gossip says of every node
	byNode   [][]int          // LocalViews: task indices per node
	local    rebalance.View   // LocalViews: one node's view
	meas     []float64
	res      *Result
	step     *Step
	period   int
}

// epoch0 is the simulated clock's origin.
var epoch0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Run simulates cfg and returns its result.
func Run(cfg Config) (*Result, error) {
	if cfg.Kinds == nil {
		cfg.Kinds = DefaultKinds()
	}
	switch {
	case cfg.Nodes < 2 || cfg.Tasks < 1 || cfg.Steps < 1 || cfg.ShiftEvery < 1 || cfg.Epochs < 1:
		return nil, fmt.Errorf("%w: need nodes >= 2, tasks, steps, shift_every, epochs >= 1", ErrConfig)
	case cfg.HotFraction < 0 || cfg.HotFraction > 1 || cfg.HotFactor <= 0 || !(cfg.MeanUtil > 0):
		return nil, fmt.Errorf("%w: hot_fraction in [0,1], hot_factor and mean_util positive", ErrConfig)
	case cfg.FailureRate < 0 || cfg.FailureRate > 1 || cfg.Noise < 0 || cfg.Noise >= 1:
		return nil, fmt.Errorf("%w: failure_rate in [0,1], noise in [0,1)", ErrConfig)
	case len(cfg.Kinds) == 0 || len(cfg.Kinds) > 64:
		return nil, fmt.Errorf("%w: 1 to 64 node kinds", ErrConfig)
	}
	check := cfg.Check
	if check == nil {
		check = DefaultCheck
	}
	pol, err := rebalance.New(cfg.Policy)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	r := &run{
		cfg: cfg, pol: pol, check: check,
		rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		res: &Result{Config: cfg},
	}
	if err := r.generate(); err != nil {
		return nil, err
	}
	r.simulate()
	return r.res, nil
}

// generate draws the nodes and the tasks and places every task on a node
// of a kind that starts it, weighted by CPUs, so that each compatibility
// pool gets load in proportion to its capacity.
func (r *run) generate() error {
	cfg := &r.cfg
	var share float64
	for _, k := range cfg.Kinds {
		share += k.Share
	}
	r.nodes = make([]node, cfg.Nodes)
	r.nodeByID = make(map[string]int, cfg.Nodes)
	cum := make([]float64, cfg.Nodes)
	var sumCPU, sumBG float64
	for i := range r.nodes {
		x := r.rng.Float64() * share
		ki := 0
		for ki < len(cfg.Kinds)-1 && x >= cfg.Kinds[ki].Share {
			x -= cfg.Kinds[ki].Share
			ki++
		}
		k := &cfg.Kinds[ki]
		n := &r.nodes[i]
		n.id = fmt.Sprintf("n%04d", i)
		n.kind = ki
		n.caps = k.Caps
		n.cpus = k.CPUs[r.rng.IntN(len(k.CPUs))]
		n.background = r.rng.Float64() * 0.1 * n.cpus
		n.bw = 1.25e9 // 10 GbE
		if r.rng.Float64() < 0.3 {
			n.bw = 3.1e9 // 25 GbE
		}
		n.mem = uint64(n.cpus) * 8 << 30
		r.nodeByID[n.id] = i
		sumCPU += n.cpus
		sumBG += n.background
		cum[i] = sumCPU
	}
	r.tasks = make([]task, cfg.Tasks)
	r.taskByID = make(map[string]int, cfg.Tasks)
	var sumDemand float64
	for i := range r.tasks {
		ni := sort.SearchFloat64s(cum, r.rng.Float64()*sumCPU)
		if ni >= len(cum) {
			ni = len(cum) - 1
		}
		k := &cfg.Kinds[r.nodes[ni].kind]
		var w float64
		for _, s := range k.Starts {
			w += s.Weight
		}
		x := r.rng.Float64() * w
		kind := k.Starts[len(k.Starts)-1].Kind
		for _, s := range k.Starts {
			if x < s.Weight {
				kind = s.Kind
				break
			}
			x -= s.Weight
		}
		t := &r.tasks[i]
		t.id = fmt.Sprintf("t%05d", i)
		t.kind = kind
		t.node = ni
		t.mult = 1
		pageSize := float64(k.Caps.PageSize)
		t.rss = uint64(math.Ceil(clamp(lognormal(r.rng, 512<<20, 1.0), 16<<20, 16<<30)/pageSize) * pageSize)
		t.dirty = clamp(lognormal(r.rng, 8e6, 1.2), 0, 5e8)
		if r.rng.Float64() < 0.03 {
			t.dirty = 1.5e9 + 1.5e9*r.rng.Float64() // writes faster than most links send
		}
		t.threads = 1 + r.rng.IntN(8)
		t.demand = clamp(lognormal(r.rng, 1, 0.7), 0.05, float64(t.threads))
		sumDemand += t.demand
		m, err := NewManifest(kind, k.Caps, int32(1000+i%30000), t.threads, t.rss)
		if err != nil {
			return err
		}
		t.m = m
		t.pool = r.poolOf(m)
		r.taskByID[t.id] = i
	}
	want := cfg.MeanUtil*sumCPU - sumBG
	if want <= 0 || sumDemand <= 0 {
		return fmt.Errorf("%w: mean_util %.2f is below the background load", ErrConfig, cfg.MeanUtil)
	}
	for i := range r.tasks {
		t := &r.tasks[i]
		t.demand = math.Min(t.demand*want/sumDemand, float64(t.threads))
	}
	r.view.Nodes = make([]rebalance.Node, len(r.nodes))
	r.view.Tasks = make([]rebalance.Task, len(r.tasks))
	r.meas = make([]float64, len(r.tasks))
	return nil
}

// ShiftedView generates the cluster of cfg, applies load phase ph (its hot
// spot) and returns the view a node would see at that moment, before any
// move: the input of the policy step benchmark.
func ShiftedView(cfg Config, ph int) (*rebalance.View, error) {
	if cfg.Kinds == nil {
		cfg.Kinds = DefaultKinds()
	}
	r := &run{cfg: cfg, check: DefaultCheck, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	if err := r.generate(); err != nil {
		return nil, err
	}
	r.shift(ph)
	for i := range r.tasks {
		r.meas[i] = r.tasks[i].need()
	}
	r.buildView(epoch0.Add(time.Hour))
	return &r.view, nil
}

func (r *run) simulate() {
	cfg := &r.cfg
	P := cfg.Policy.Period
	offsets := make([]float64, len(r.nodes))
	buckets := make([][]int, cfg.Epochs)
	var planTotal, nodeTotal time.Duration
	var phase *Shift
	converged := false
	for k := 0; k < cfg.Steps; k++ {
		r.period = k
		start := epoch0.Add(time.Duration(k) * P)
		if k%cfg.ShiftEvery == 0 {
			if phase != nil {
				r.closePhase(phase)
			}
			r.res.Shifts = append(r.res.Shifts, Shift{Phase: k / cfg.ShiftEvery, StartPeriod: k, PeriodsToConverge: -1})
			phase = &r.res.Shifts[len(r.res.Shifts)-1]
			phase.HotNodes = r.shift(phase.Phase)
			phase.Floor = r.floor()
			phase.Goal = math.Max(cfg.Converged, phase.Floor*cfg.Policy.High)
			converged = false
		}
		for i := range r.tasks {
			t := &r.tasks[i]
			r.meas[i] = t.need() * (1 + cfg.Noise*(2*r.rng.Float64()-1))
		}
		for e := range buckets {
			buckets[e] = buckets[e][:0]
		}
		for i := range r.nodes {
			offsets[i] = r.rng.Float64()
			e := int(offsets[i] * float64(cfg.Epochs))
			buckets[e] = append(buckets[e], i)
		}
		r.step = &Step{Period: k, Phase: phase.Phase}
		var periodPlan time.Duration
		for e := range buckets {
			at := start.Add(time.Duration(e) * P / time.Duration(cfg.Epochs))
			r.complete(at)
			r.buildView(at)
			var plan *rebalance.Plan
			if !cfg.LocalViews || e == 0 {
				t0 := time.Now()
				plan = r.pol.Plan(&r.view)
				d := time.Since(t0)
				periodPlan += d
				planTotal += d
				r.res.PolicySteps++
				if ms := float64(d) / 1e6; ms > r.res.StepMSMax {
					r.res.StepMSMax = ms
				}
				if (k+1)%cfg.ShiftEvery == 0 || k == cfg.Steps-1 {
					phase.Holds = plan.Holds[:min(5, len(plan.Holds))]
				}
			}
			if cfg.LocalViews {
				r.buildGossip()
			}
			list := buckets[e]
			sort.Slice(list, func(a, b int) bool { return offsets[list[a]] < offsets[list[b]] })
			for _, ni := range list {
				var p *rebalance.Proposal
				if cfg.LocalViews {
					p = r.planLocal(ni, &nodeTotal)
				} else {
					p = plan.For(r.nodes[ni].id)
				}
				if p != nil {
					r.step.Proposals++
					r.execute(p, start.Add(time.Duration(offsets[ni]*float64(P))))
				}
			}
		}
		r.complete(start.Add(P))
		if cfg.LocalViews {
			r.step.StepMS = float64(periodPlan) / 1e6
		} else {
			r.step.StepMS = float64(periodPlan) / 1e6 / float64(cfg.Epochs)
		}
		r.step.InFlight = len(r.inflight)
		r.measure(r.step)
		r.res.Series = append(r.res.Series, *r.step)
		if r.step.MaxMean > phase.PeakMaxMean {
			phase.PeakMaxMean = r.step.MaxMean
		}
		if converged && r.step.MaxMean > phase.MaxAfterConverged {
			phase.MaxAfterConverged = r.step.MaxMean
		}
		if !converged && r.step.MaxMean < phase.Goal {
			converged = true
			phase.PeriodsToConverge = k - phase.StartPeriod + 1
			phase.MaxAfterConverged = r.step.MaxMean
		}
		phase.FinalMaxMean = r.step.MaxMean
		phase.Moves += r.step.Moves
	}
	r.closePhase(phase)
	res := r.res
	res.FinalMaxMean = res.Series[len(res.Series)-1].MaxMean
	res.StepMS = float64(planTotal) / 1e6 / float64(res.PolicySteps)
	if res.NodeSteps > 0 {
		res.NodeStepMS = float64(nodeTotal) / 1e6 / float64(res.NodeSteps)
	}
	for i := range r.tasks {
		t := &r.tasks[i]
		if t.moves > res.MaxMovesPerTask {
			res.MaxMovesPerTask = t.moves
		}
		if t.moves > 0 {
			res.TasksMoved++
		}
	}
}

// shift starts load phase ph: the hot spot moves to a new window of nodes.
// It returns the number of hot nodes.
func (r *run) shift(ph int) int {
	for i := range r.tasks {
		r.tasks[i].mult = 1
	}
	if ph == 0 {
		return 0
	}
	n := len(r.nodes)
	width := int(math.Round(r.cfg.HotFraction * float64(n)))
	// Golden-ratio steps spread the windows over the ring of nodes.
	first := int(math.Mod(float64(ph)*0.6180339887, 1) * float64(n))
	hot := make([]bool, n)
	for j := 0; j < width; j++ {
		hot[(first+j)%n] = true
	}
	for i := range r.tasks {
		if hot[r.tasks[i].node] {
			r.tasks[i].mult = r.cfg.HotFactor
		}
	}
	return width
}

func (r *run) closePhase(ph *Shift) {
	for i := range r.tasks {
		t := &r.tasks[i]
		if t.movesPhase > ph.MaxMovesPerTask {
			ph.MaxMovesPerTask = t.movesPhase
		}
		t.movesPhase = 0
	}
	if ph.MaxMovesPerTask > r.res.MaxMovesPerTaskPerShift {
		r.res.MaxMovesPerTaskPerShift = ph.MaxMovesPerTask
	}
}

// buildView is the gossip view at time at: every node's load from the
// tasks' measured CPU (a task in flight still runs on its source), moves in
// flight visible as MovingTo.
func (r *run) buildView(at time.Time) {
	v := &r.view
	v.Now = at
	for i := range r.nodes {
		n := &r.nodes[i]
		v.Nodes[i] = rebalance.Node{ID: n.id, Caps: n.caps, CPUs: n.cpus, Load: n.background,
			FreeMemory: n.mem, Bandwidth: n.bw}
	}
	for i := range r.tasks {
		t := &r.tasks[i]
		vn := &v.Nodes[t.node]
		vn.Load += r.meas[i]
		vn.FreeMemory -= t.rss
		vt := rebalance.Task{ID: t.id, Node: r.nodes[t.node].id, Manifest: t.m, CPU: r.meas[i],
			RSS: t.rss, DirtyRate: t.dirty, LastMoved: t.lastMoved}
		if t.moving {
			vt.MovingTo = r.nodes[t.target].id
		}
		v.Tasks[i] = vt
	}
}

// buildGossip derives from the epoch's view what every node knows of the
// others: their load and free memory with the moves in flight toward them
// (the destination advertises what it accepted), and the tasks of each node.
func (r *run) buildGossip() {
	if r.gossip == nil {
		r.gossip = make([]rebalance.Node, len(r.nodes))
		r.byNode = make([][]int, len(r.nodes))
	}
	copy(r.gossip, r.view.Nodes)
	for i := range r.byNode {
		r.byNode[i] = r.byNode[i][:0]
	}
	for i := range r.tasks {
		t := &r.tasks[i]
		r.byNode[t.node] = append(r.byNode[t.node], i)
		if t.moving {
			g := &r.gossip[t.target]
			g.Load += r.meas[i]
			g.FreeMemory -= t.rss
		}
	}
}

// planLocal is node ni's own policy step with LocalViews: all nodes as
// gossip has them, its own tasks. A node that is not hot would get no
// proposal, so it does not plan at all (as an agent may skip it too).
func (r *run) planLocal(ni int, total *time.Duration) *rebalance.Proposal {
	var sumLoad, sumCPU float64
	for i := range r.gossip {
		sumLoad += r.gossip[i].Load
		sumCPU += r.gossip[i].CPUs
	}
	pc := &r.cfg.Policy
	if u := r.gossip[ni].Load / r.gossip[ni].CPUs; u <= pc.High*sumLoad/sumCPU || u <= pc.MinHotUtil {
		return nil
	}
	v := &r.local
	v.Now, v.Nodes, v.Tasks = r.view.Now, r.gossip, v.Tasks[:0]
	for _, ti := range r.byNode[ni] {
		v.Tasks = append(v.Tasks, r.view.Tasks[ti])
	}
	t0 := time.Now()
	plan := r.pol.Plan(v)
	d := time.Since(t0)
	*total += d
	r.res.NodeSteps++
	if ms := float64(d) / 1e6; ms > r.res.NodeStepMSMax {
		r.res.NodeStepMSMax = ms
	}
	return plan.For(r.nodes[ni].id)
}

// execute is what the source agent does with its proposal at time at: the
// simulator's own compat check, the destination's admission, then the move
// starts and takes its pre-copy time.
func (r *run) execute(p *rebalance.Proposal, at time.Time) {
	ti, ok := r.taskByID[p.Task]
	di, ok2 := r.nodeByID[p.Target]
	if !ok || !ok2 {
		return
	}
	t := &r.tasks[ti]
	if t.moving || r.nodes[t.node].id != p.Source {
		return
	}
	if !r.check(t.m, r.nodes[di].caps) {
		r.res.IncompatibleMoves++
		r.pol.Failed(t.id, p.Target, at)
		return
	}
	src := &r.nodes[t.node]
	est := rebalance.EstimateMove(t.rss, t.dirty, src.bw, r.cfg.Policy.DowntimeLimit, r.cfg.Policy.MaxRounds)
	if !est.Converges {
		r.res.NonConvergingMoves++
		r.pol.Failed(t.id, p.Target, at)
		return
	}
	if err := r.pol.Admit(&r.view, &r.view.Tasks[ti], p.Target); err != nil {
		r.step.Refused++
		r.res.MovesRefused++
		r.pol.Failed(t.id, p.Target, at)
		return
	}
	t.moving = true
	t.target = di
	t.end = at.Add(est.Duration + r.cfg.MoveSetup)
	t.fail = r.rng.Float64() < r.cfg.FailureRate
	r.view.Tasks[ti].MovingTo = p.Target
	r.inflight = append(r.inflight, ti)
	r.step.Started++
	r.res.MovesStarted++
}

// complete ends the moves due by time at, in the order they end.
func (r *run) complete(at time.Time) {
	var due []int
	keep := r.inflight[:0]
	for _, ti := range r.inflight {
		if !r.tasks[ti].end.After(at) {
			due = append(due, ti)
		} else {
			keep = append(keep, ti)
		}
	}
	r.inflight = keep
	sort.Slice(due, func(a, b int) bool {
		ta, tb := &r.tasks[due[a]], &r.tasks[due[b]]
		if !ta.end.Equal(tb.end) {
			return ta.end.Before(tb.end)
		}
		return due[a] < due[b]
	})
	for _, ti := range due {
		t := &r.tasks[ti]
		t.moving = false
		target := r.nodes[t.target].id
		if t.fail {
			r.step.Failed++
			r.res.MovesFailed++
			r.pol.Failed(t.id, target, t.end)
			continue
		}
		for _, l := range t.left {
			if l.node == t.target && r.period-l.period < r.cfg.OscillationWindow {
				r.res.Oscillations++
				break
			}
		}
		t.left = append(t.left, leave{t.node, r.period})
		if len(t.left) > 4 {
			t.left = t.left[1:]
		}
		t.node = t.target
		t.lastMoved = t.end
		t.moves++
		t.movesPhase++
		r.pol.Moved(t.id, target)
		r.step.Moves++
		r.res.Moves++
	}
}

// measure fills the step's utilisation figures from the tasks' true demand.
func (r *run) measure(s *Step) {
	load := make([]float64, len(r.nodes))
	var sumLoad, sumCPU float64
	for i := range r.nodes {
		load[i] = r.nodes[i].background
		sumCPU += r.nodes[i].cpus
	}
	for i := range r.tasks {
		load[r.tasks[i].node] += r.tasks[i].need()
	}
	for i := range r.nodes {
		sumLoad += load[i]
		if u := load[i] / r.nodes[i].cpus; u > s.MaxUtil {
			s.MaxUtil = u
		}
	}
	s.MeanUtil = sumLoad / sumCPU
	s.MaxMean = s.MaxUtil / s.MeanUtil
}
