package rebalance_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/migrated/migrated/compat"
	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/rebalance"
	"github.com/migrated/migrated/rebalance/sim"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// caps returns the capabilities of one of the simulator's node kinds
// ("ppc64le-power9", "ppc64le-power10", "ppc64-power9-compat",
// "ppc64-power9", "ppc64-power10", "amd64-avx512", "amd64-avx2").
func caps(t testing.TB, kind string) *compat.HostCaps {
	t.Helper()
	for _, k := range sim.DefaultKinds() {
		if k.Name == kind {
			return k.Caps
		}
	}
	t.Fatalf("no node kind %q", kind)
	return nil
}

// origin is the node kind a task kind is started on in these tests.
var origin = map[string]string{
	"ppc64le": "ppc64le-power9", "ppc64le-isa31": "ppc64le-power10", "ppc64": "ppc64-power9",
	"ppc32": "ppc64-power9-compat", "amd64": "amd64-avx2", "amd64-avx512": "amd64-avx512", "i386": "amd64-avx2",
}

func node(t testing.TB, id, kind string, cpus, load float64) rebalance.Node {
	return rebalance.Node{ID: id, Caps: caps(t, kind), CPUs: cpus, Load: load, FreeMemory: 64 << 30, Bandwidth: 1e9}
}

func task(t testing.TB, id, on, kind string, cpu float64) rebalance.Task {
	return taskFrom(t, id, on, kind, origin[kind], cpu)
}

// taskFrom is a task of kind started on a node of kind from.
func taskFrom(t testing.TB, id, on, kind, from string, cpu float64) rebalance.Task {
	t.Helper()
	m, err := sim.NewManifest(kind, caps(t, from), 4242, 1, 256<<20)
	if err != nil {
		t.Fatal(err)
	}
	return rebalance.Task{ID: id, Node: on, Manifest: m, CPU: cpu, RSS: 256 << 20, DirtyRate: 1e6}
}

func policy(t testing.TB, mod func(*rebalance.Config)) *rebalance.Policy {
	t.Helper()
	cfg := rebalance.DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	p, err := rebalance.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// moves renders a plan as "task:source>target" in order, "-" if empty.
func moves(pl *rebalance.Plan) string {
	var s []string
	for _, p := range pl.Proposals {
		s = append(s, p.Task+":"+p.Source+">"+p.Target)
	}
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, " ")
}

// threeNodes: a is at 0.9, b at 0.3, c at 0.45 (10 CPUs each, all POWER9
// ppc64le): mean 0.55. a runs a 2-CPU task and seven 1-CPU tasks.
func threeNodes(t *testing.T) *rebalance.View {
	v := &rebalance.View{Now: t0, Nodes: []rebalance.Node{
		node(t, "a", "ppc64le-power9", 10, 9),
		node(t, "b", "ppc64le-power9", 10, 3),
		node(t, "c", "ppc64le-power9", 10, 4.5),
	}}
	v.Tasks = append(v.Tasks, task(t, "big", "a", "ppc64le", 2))
	for i := 0; i < 7; i++ {
		v.Tasks = append(v.Tasks, task(t, fmt.Sprintf("small%d", i), "a", "ppc64le", 1))
	}
	return v
}

func TestHysteresis(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*rebalance.Config)
		want string
		hold string // part of the hold's sentence when no move
	}{
		{"defaults: most headroom wins", nil, "big:a>b", ""},
		// high 1.7 x 0.55 = 0.935 > 0.9: a is not hot.
		{"below the high watermark", func(c *rebalance.Config) { c.High = 1.7 }, "-", ""},
		{"below the absolute floor", func(c *rebalance.Config) { c.MinHotUtil = 0.95 }, "-", ""},
		// low 0.7 x 0.55 = 0.385: c (0.45) sits between the watermarks and is
		// no target; b still is.
		{"only below the low watermark", func(c *rebalance.Config) { c.Low = 0.7 }, "big:a>b", ""},
		// low 0.5 x 0.55 = 0.275: no node is below it.
		{"nothing below the low watermark", func(c *rebalance.Config) { c.Low = 0.5 },
			"-", "no compatible target below 0.50"},
		// ceiling = low = 0.75 x 0.55 = 0.4125: the 2-CPU task would lift b
		// (0.3) above it, a 1-CPU task fits; c (0.45) is above low.
		{"ceiling keeps the target cool", func(c *rebalance.Config) { c.Low, c.Ceiling = 0.75, 0.75 }, "small0:a>b", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pl := policy(t, tc.mod).Plan(threeNodes(t))
			if got := moves(pl); got != tc.want {
				t.Fatalf("moves %s, want %s (holds %+v)", got, tc.want, pl.Holds)
			}
			if tc.hold != "" && (len(pl.Holds) != 1 || !strings.Contains(pl.Holds[0].Why, tc.hold)) {
				t.Fatalf("holds %+v, want one saying %q", pl.Holds, tc.hold)
			}
			for _, p := range pl.Proposals {
				if p.TargetUtilAfter > p.PoolMean*policy(t, tc.mod).Config().Ceiling+1e-12 {
					t.Errorf("target %s ends at %.3f, above the ceiling", p.Target, p.TargetUtilAfter)
				}
				if p.Why == "" || !strings.Contains(p.Why, p.Task) {
					t.Errorf("proposal without a why: %+v", p)
				}
			}
		})
	}
}

// TestSettles applies every proposal as if the move completed at once and
// plans again: the cluster must settle within a few periods, with every task
// moved at most once and nobody hot for long.
func TestSettles(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	v := &rebalance.View{Now: t0}
	for i := 0; i < 12; i++ {
		v.Nodes = append(v.Nodes, node(t, fmt.Sprintf("n%02d", i), "ppc64le-power9", 16, 0.5))
	}
	for i := 0; i < 120; i++ {
		on := rng.IntN(3) // everything starts on three nodes
		tk := task(t, fmt.Sprintf("t%03d", i), v.Nodes[on].ID, "ppc64le", 0.2+rng.Float64())
		v.Tasks = append(v.Tasks, tk)
		v.Nodes[on].Load += tk.CPU
	}
	p := policy(t, nil)
	movedFrom := map[string][]string{}
	for period := 0; ; period++ {
		if period == 100 {
			t.Fatal("not settled after 100 periods")
		}
		pl := p.Plan(v)
		if len(pl.Proposals) == 0 {
			t.Logf("settled after %d periods", period)
			break
		}
		v.Now = v.Now.Add(p.Config().Period)
		for _, pr := range pl.Proposals {
			for i := range v.Tasks {
				tk := &v.Tasks[i]
				if tk.ID != pr.Task {
					continue
				}
				for _, from := range movedFrom[tk.ID] {
					if from == pr.Target {
						t.Fatalf("period %d: %s goes back to %s", period, tk.ID, from)
					}
				}
				movedFrom[tk.ID] = append(movedFrom[tk.ID], pr.Source)
				tk.Node, tk.LastMoved = pr.Target, v.Now
				for j := range v.Nodes {
					switch v.Nodes[j].ID {
					case pr.Source:
						v.Nodes[j].Load -= tk.CPU
					case pr.Target:
						v.Nodes[j].Load += tk.CPU
					}
				}
			}
		}
	}
	var sum, max float64
	for _, n := range v.Nodes {
		sum += n.Load / n.CPUs
		if u := n.Load / n.CPUs; u > max {
			max = u
		}
	}
	if mean := sum / float64(len(v.Nodes)); max/mean > 1.25 {
		t.Errorf("settled at max/mean %.2f", max/mean)
	}
	for id, from := range movedFrom {
		if len(from) > 2 {
			t.Errorf("task %s moved %d times", id, len(from))
		}
	}
}

func TestCooldown(t *testing.T) {
	for _, tc := range []struct {
		name     string
		movedAgo time.Duration // of task "big"
		cooldown time.Duration
		want     string
	}{
		{"never moved", 0, time.Minute, "big:a>b"},
		{"cooling down: the next best task goes", 30 * time.Second, time.Minute, "small0:a>b"},
		{"cooled down", 61 * time.Second, time.Minute, "big:a>b"},
		{"no cooldown", time.Second, 0, "big:a>b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := threeNodes(t)
			if tc.movedAgo > 0 {
				v.Tasks[0].LastMoved = t0.Add(-tc.movedAgo)
			}
			pl := policy(t, func(c *rebalance.Config) { c.Cooldown = tc.cooldown }).Plan(v)
			if got := moves(pl); got != tc.want {
				t.Fatalf("moves %s, want %s", got, tc.want)
			}
		})
	}
	t.Run("all cooling", func(t *testing.T) {
		v := threeNodes(t)
		for i := range v.Tasks {
			v.Tasks[i].LastMoved = t0.Add(-time.Second)
		}
		pl := policy(t, nil).Plan(v)
		if moves(pl) != "-" || len(pl.Holds) != 1 || !strings.Contains(pl.Holds[0].Why, "8 are cooling down") {
			t.Fatalf("plan %s holds %+v", moves(pl), pl.Holds)
		}
	})
}

func TestCompatibilityFiltering(t *testing.T) {
	// A hot big-endian POWER9 with CONFIG_COMPAT runs a ppc32 task and a
	// ppc64 task; the idle nodes with the most headroom cannot run them.
	base := func(t *testing.T) *rebalance.View {
		return &rebalance.View{Now: t0, Nodes: []rebalance.Node{
			node(t, "hot", "ppc64-power9-compat", 32, 30),
			node(t, "le10", "ppc64le-power10", 96, 0),       // little-endian
			node(t, "be10", "ppc64-power10", 48, 0),         // no CONFIG_COMPAT, other kernel build
			node(t, "x86", "amd64-avx512", 64, 0),           // other arch
			node(t, "compat", "ppc64-power9-compat", 32, 8), // the only fit
		}, Tasks: []rebalance.Task{
			task(t, "p32", "hot", "ppc32", 6),
			taskFrom(t, "p64", "hot", "ppc64", "ppc64-power9-compat", 4),
		}}
	}
	t.Run("compat.Decide", func(t *testing.T) {
		v := base(t)
		pl := policy(t, nil).Plan(v)
		if got := moves(pl); got != "p32:hot>compat" {
			t.Fatalf("moves %s, want p32:hot>compat; holds %+v", got, pl.Holds)
		}
		for _, p := range pl.Proposals {
			checkCompatible(t, v, p)
		}
	})
	t.Run("no compatible target", func(t *testing.T) {
		v := base(t)
		v.Nodes = v.Nodes[:4]
		pl := policy(t, nil).Plan(v)
		// Nothing else runs them: their pool is the hot node alone.
		if got := moves(pl); got != "-" || len(pl.Holds) != 1 || !strings.Contains(pl.Holds[0].Why, "2 can only go where the load is as high") {
			t.Fatalf("moves %s holds %+v", got, pl.Holds)
		}
	})
	t.Run("injected", func(t *testing.T) {
		// A Compatible function that allows only the amd64 node: the
		// policy must follow it, whatever compat.Decide says.
		calls := 0
		p := policy(t, func(c *rebalance.Config) {
			c.Compatible = func(m *image.Manifest, h *compat.HostCaps) bool {
				calls++
				return h.Arch == image.Arch_ARCH_AMD64
			}
		})
		pl := p.Plan(base(t))
		if got := moves(pl); got != "p32:hot>x86" {
			t.Fatalf("moves %s, want p32:hot>x86", got)
		}
		if calls == 0 || calls > 2*5 {
			t.Fatalf("%d compatibility calls; want one per task and capability class at most", calls)
		}
	})
}

func checkCompatible(t *testing.T, v *rebalance.View, p rebalance.Proposal) {
	t.Helper()
	var m *image.Manifest
	var h *compat.HostCaps
	for i := range v.Tasks {
		if v.Tasks[i].ID == p.Task {
			m = v.Tasks[i].Manifest
		}
	}
	for i := range v.Nodes {
		if v.Nodes[i].ID == p.Target {
			h = v.Nodes[i].Caps
		}
	}
	if k := compat.Decide(m, h).GetKind(); k != image.Verdict_ACCEPT && k != image.Verdict_TRANSLATE {
		t.Fatalf("proposal %s to %s: compat says %v", p.Task, p.Target, compat.Decide(m, h))
	}
}

// TestNeverIncompatible plans random mixed clusters and checks every
// proposal against compat.Decide independently.
func TestNeverIncompatible(t *testing.T) {
	kinds := sim.DefaultKinds()
	rng := rand.New(rand.NewPCG(11, 3))
	var proposals int
	for round := 0; round < 30; round++ {
		v := &rebalance.View{Now: t0}
		for i := 0; i < 40; i++ {
			k := kinds[rng.IntN(len(kinds))]
			v.Nodes = append(v.Nodes, rebalance.Node{ID: fmt.Sprintf("n%02d", i), Caps: k.Caps, CPUs: 16,
				Load: 16 * rng.Float64() * 0.6, FreeMemory: 32 << 30})
		}
		for i := 0; i < 300; i++ {
			n := &v.Nodes[rng.IntN(len(v.Nodes))]
			var k sim.NodeKind
			for _, kk := range kinds {
				if kk.Caps == n.Caps {
					k = kk
				}
			}
			m, err := sim.NewManifest(k.Starts[rng.IntN(len(k.Starts))].Kind, k.Caps, 100, 1, 64<<20)
			if err != nil {
				t.Fatal(err)
			}
			tk := rebalance.Task{ID: fmt.Sprintf("t%03d", i), Node: n.ID, Manifest: m, CPU: rng.Float64(), RSS: 64 << 20}
			n.Load += tk.CPU
			v.Tasks = append(v.Tasks, tk)
		}
		pl := policy(t, nil).Plan(v)
		for _, p := range pl.Proposals {
			checkCompatible(t, v, p)
			proposals++
		}
	}
	if proposals == 0 {
		t.Fatal("no proposals at all: the test checks nothing")
	}
	t.Logf("%d proposals checked", proposals)
}

func TestTieBreaking(t *testing.T) {
	t.Run("equal targets without spread: lower node ID", func(t *testing.T) {
		v := &rebalance.View{Now: t0, Nodes: []rebalance.Node{
			node(t, "a", "ppc64le-power9", 10, 9),
			node(t, "z", "ppc64le-power9", 10, 3),
			node(t, "m", "ppc64le-power9", 10, 3),
		}, Tasks: []rebalance.Task{task(t, "t", "a", "ppc64le", 2)}}
		if got := moves(policy(t, func(c *rebalance.Config) { c.Spread = 0 }).Plan(v)); got != "t:a>m" {
			t.Fatalf("moves %s, want t:a>m", got)
		}
	})
	t.Run("near-equal targets: spread by task, same answer every time", func(t *testing.T) {
		// Eight targets within 25% of the best headroom, one far behind:
		// each task ID ranks them its own way; without spread all take n0.
		targets := func(spread float64) map[string]int {
			got := map[string]int{}
			for i := 0; i < 40; i++ {
				v := &rebalance.View{Now: t0, Nodes: []rebalance.Node{node(t, "hot", "ppc64le-power9", 10, 9)}}
				for j := 0; j < 8; j++ {
					v.Nodes = append(v.Nodes, node(t, fmt.Sprintf("n%d", j), "ppc64le-power9", 10, 2+float64(j)*0.1))
				}
				v.Nodes = append(v.Nodes, node(t, "far", "ppc64le-power9", 10, 5.2))
				v.Tasks = []rebalance.Task{task(t, fmt.Sprintf("task%02d", i), "hot", "ppc64le", 1)}
				p := policy(t, func(c *rebalance.Config) { c.Spread = spread })
				a, b := p.Plan(v).For("hot"), p.Plan(v).For("hot")
				if a == nil || b == nil || a.Target != b.Target {
					t.Fatalf("spread %v, task %d: plans %v and %v", spread, i, a, b)
				}
				got[a.Target]++
			}
			return got
		}
		if got := targets(0); len(got) != 1 || got["n0"] != 40 {
			t.Fatalf("without spread: %v", got)
		}
		got := targets(0.25)
		if len(got) < 4 || got["far"] != 0 {
			t.Fatalf("with spread 0.25 the 40 tasks went to %v: want at least 4 of the near-best, never far", got)
		}
	})
	t.Run("equal tasks: lower task ID", func(t *testing.T) {
		v := &rebalance.View{Now: t0, Nodes: []rebalance.Node{
			node(t, "a", "ppc64le-power9", 10, 9),
			node(t, "b", "ppc64le-power9", 10, 3),
		}, Tasks: []rebalance.Task{
			task(t, "t9", "a", "ppc64le", 2), task(t, "t1", "a", "ppc64le", 2), task(t, "t5", "a", "ppc64le", 2),
		}}
		if got := moves(policy(t, nil).Plan(v)); got != "t1:a>b" {
			t.Fatalf("moves %s, want t1:a>b", got)
		}
	})
	t.Run("equal hot nodes share one target: lower node ID first", func(t *testing.T) {
		// b has room for one 2-CPU task under its ceiling only.
		v := &rebalance.View{Now: t0, Nodes: []rebalance.Node{
			node(t, "y", "ppc64le-power9", 10, 8),
			node(t, "x", "ppc64le-power9", 10, 8),
			node(t, "b", "ppc64le-power9", 10, 4),
		}, Tasks: []rebalance.Task{task(t, "ty", "y", "ppc64le", 2), task(t, "tx", "x", "ppc64le", 2)}}
		pl := policy(t, nil).Plan(v)
		if got := moves(pl); got != "tx:x>b" {
			t.Fatalf("moves %s, want tx:x>b", got)
		}
		if len(pl.Holds) != 1 || pl.Holds[0].Node != "y" {
			t.Fatalf("holds %+v, want y", pl.Holds)
		}
	})
	t.Run("order of the view does not matter", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 5))
		v := &rebalance.View{Now: t0}
		for i := 0; i < 30; i++ {
			v.Nodes = append(v.Nodes, node(t, fmt.Sprintf("n%02d", i), "ppc64le-power10", 8, 0))
		}
		for i := 0; i < 200; i++ {
			n := &v.Nodes[rng.IntN(10)]
			tk := task(t, fmt.Sprintf("t%03d", i), n.ID, "ppc64le", float64(1+rng.IntN(3))/4)
			n.Load += tk.CPU
			v.Tasks = append(v.Tasks, tk)
		}
		want := moves(policy(t, nil).Plan(v))
		for i := 0; i < 5; i++ {
			rng.Shuffle(len(v.Nodes), func(a, b int) { v.Nodes[a], v.Nodes[b] = v.Nodes[b], v.Nodes[a] })
			rng.Shuffle(len(v.Tasks), func(a, b int) { v.Tasks[a], v.Tasks[b] = v.Tasks[b], v.Tasks[a] })
			if got := moves(policy(t, nil).Plan(v)); got != want {
				t.Fatalf("shuffled view planned\n%s\nwant\n%s", got, want)
			}
		}
	})
}

func TestMinGain(t *testing.T) {
	// a (100 CPUs) at 0.8 runs one 1-CPU task: moving it gains 0.01 at best.
	view := func(t *testing.T) *rebalance.View {
		return &rebalance.View{Now: t0, Nodes: []rebalance.Node{
			node(t, "a", "ppc64le-power9", 100, 80),
			node(t, "b", "ppc64le-power9", 100, 20),
		}, Tasks: []rebalance.Task{task(t, "t", "a", "ppc64le", 1)}}
	}
	for _, tc := range []struct {
		name string
		mod  func(*rebalance.Config)
		want string
	}{
		// Without downtime cost the move costs 0.005 x 0.25 GiB.
		{"gain above the minimum", func(c *rebalance.Config) { c.MinGain, c.CostPerDowntimeSecond = 0.005, 0 }, "t:a>b"},
		{"gain below the minimum", func(c *rebalance.Config) { c.MinGain, c.CostPerDowntimeSecond = 0.02, 0 }, "-"},
		{"cost eats the gain", func(c *rebalance.Config) { c.MinGain, c.CostPerDowntimeSecond, c.CostPerGiB = 0.005, 0, 0.05 }, "-"},
		{"downtime cost eats the gain", func(c *rebalance.Config) { c.MinGain = 0.005 }, "-"},
		{"zero minimum and costs", func(c *rebalance.Config) { c.MinGain, c.CostPerDowntimeSecond, c.CostPerGiB = 0, 0, 0 }, "t:a>b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pl := policy(t, tc.mod).Plan(view(t))
			if got := moves(pl); got != tc.want {
				t.Fatalf("moves %s, want %s", got, tc.want)
			}
			if tc.want == "-" && (len(pl.Holds) != 1 || !strings.Contains(pl.Holds[0].Why, "gain too little")) {
				t.Fatalf("holds %+v", pl.Holds)
			}
			for _, p := range pl.Proposals {
				if p.Score < p.Gain-p.Cost-1e-12 || p.Score < policy(t, tc.mod).Config().MinGain {
					t.Fatalf("score %v gain %v cost %v", p.Score, p.Gain, p.Cost)
				}
			}
		})
	}
}

func TestFailedMoveBacksOff(t *testing.T) {
	p := policy(t, func(c *rebalance.Config) { c.Backoff, c.MaxBackoff = 30*time.Second, 100*time.Second })
	at := func(d time.Duration) *rebalance.View {
		v := threeNodes(t)
		v.Now = t0.Add(d)
		return v
	}
	steps := []struct {
		at     time.Duration
		fail   string // the pair big/<fail> fails at this time, after planning
		want   string
		moved  bool
		backTo time.Duration // BackoffUntil(big, b) after the step, relative to t0
	}{
		// While big/b backs off, big fits nowhere else (c has 1.55 CPUs
		// of headroom): the best other move goes.
		{at: 0, want: "big:a>b", fail: "b", backTo: 30 * time.Second},
		{at: time.Second, want: "small0:a>b"},
		{at: 29 * time.Second, want: "small0:a>b"},
		{at: 30 * time.Second, want: "big:a>b", fail: "b", backTo: 90 * time.Second}, // doubled
		{at: 89 * time.Second, want: "small0:a>b"},
		{at: 90 * time.Second, want: "big:a>b", fail: "b", backTo: 190 * time.Second}, // capped at 100 s
		{at: 190 * time.Second, want: "big:a>b", moved: true},
	}
	for _, s := range steps {
		pl := p.Plan(at(s.at))
		if got := moves(pl); got != s.want {
			t.Fatalf("at %v: moves %s, want %s", s.at, got, s.want)
		}
		switch {
		case s.fail != "":
			p.Failed("big", s.fail, t0.Add(s.at))
			if got := p.BackoffUntil("big", "b"); !got.Equal(t0.Add(s.backTo)) {
				t.Fatalf("at %v: backoff until %v, want %v", s.at, got.Sub(t0), s.backTo)
			}
		case s.moved:
			p.Moved("big", "b")
			if got := p.BackoffUntil("big", "b"); !got.IsZero() {
				t.Fatalf("a successful move keeps the backoff until %v", got)
			}
		}
	}
	t.Run("every target backing off", func(t *testing.T) {
		p := policy(t, nil)
		v := threeNodes(t)
		v.Tasks = v.Tasks[:1]
		p.Failed("big", "b", t0)
		p.Failed("big", "c", t0)
		pl := p.Plan(v)
		if got := moves(pl); got != "-" || len(pl.Holds) != 1 || !strings.Contains(pl.Holds[0].Why, "no compatible target") {
			t.Fatalf("moves %s holds %+v", got, pl.Holds)
		}
	})
}

func TestNeverConverging(t *testing.T) {
	v := threeNodes(t)
	v.Tasks = v.Tasks[:2]
	v.Tasks[0].DirtyRate = 2e9 // writes faster than a 1 GB/s link sends
	v.Tasks[0].RSS = 4 << 30   // and does not fit in one stop-and-copy
	v.Tasks[1].DirtyRate = 0
	pl := policy(t, nil).Plan(v)
	if got := moves(pl); got != "small0:a>b" {
		t.Fatalf("moves %s, want small0:a>b", got)
	}
	v.Tasks = v.Tasks[:1]
	pl = policy(t, nil).Plan(v)
	if got := moves(pl); got != "-" || !strings.Contains(pl.Holds[0].Why, "would not converge") {
		t.Fatalf("moves %s holds %+v", got, pl.Holds)
	}
}

func TestMovesInFlight(t *testing.T) {
	v := threeNodes(t)
	v.Tasks[1].MovingTo = "b"
	pl := policy(t, nil).Plan(v)
	if got := moves(pl); got != "-" || !strings.Contains(pl.Holds[0].Why, "in flight") {
		t.Fatalf("moves %s holds %+v", got, pl.Holds)
	}
	// Another hot node sees b with the inbound task counted: b (3 + 1)
	// no longer has the most headroom against c (4.5)... both under low,
	// b's room 6.05-4 = 2.05 vs c's 1.55: b still, but for a 2-CPU task b
	// ends at 0.6 (ceiling 0.605).
	v.Nodes = append(v.Nodes, node(t, "d", "ppc64le-power9", 10, 9))
	v.Tasks = append(v.Tasks, task(t, "dt", "d", "ppc64le", 2))
	pl = policy(t, func(c *rebalance.Config) { c.Spread = 0 }).Plan(v)
	if p := pl.For("d"); p == nil || p.TargetUtil != 0.4 {
		t.Fatalf("plan %s: want d's move to see b at 0.4 (its inbound task counted)", moves(pl))
	}
}

func TestEstimateMove(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		name      string
		rss       uint64
		dirty, bw float64
		converges bool
		rounds    int
		downtime  time.Duration
	}{
		{"fits in the downtime budget", 100e6, 0, 1e9, true, 0, 100 * time.Millisecond},
		{"one round then nothing dirty", gib, 0, 1e9, true, 1, 0},
		{"dirty pages shrink", gib, 50e6, 1e9, true, 1, 53687091},
		{"dirtier than the link", gib, 2e9, 1e9, false, 0, 0},
		{"no bandwidth", gib, 0, 0, false, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := rebalance.EstimateMove(tc.rss, tc.dirty, tc.bw, 300*time.Millisecond, 30)
			if e.Converges != tc.converges {
				t.Fatalf("%+v: converges %v", e, e.Converges)
			}
			if !tc.converges {
				return
			}
			if e.Rounds != tc.rounds || (e.Downtime-tc.downtime).Abs() > time.Microsecond {
				t.Fatalf("%+v: want %d rounds, downtime %v", e, tc.rounds, tc.downtime)
			}
			if e.Bytes < float64(tc.rss) || e.Duration < e.Downtime {
				t.Fatalf("%+v: sends less than the RSS or lasts less than its downtime", e)
			}
		})
	}
}

func TestAdmit(t *testing.T) {
	v := threeNodes(t)
	p := policy(t, nil)
	big := v.Tasks[0]
	if err := p.Admit(v, &big, "b"); err != nil {
		t.Fatalf("admit to b: %v", err)
	}
	for _, tc := range []struct {
		name   string
		edit   func(v *rebalance.View, tk *rebalance.Task)
		target string
		want   string
	}{
		{"unknown node", nil, "nowhere", "not in the view"},
		{"no target", func(v *rebalance.View, tk *rebalance.Task) { v.Nodes[1].NoTarget = true }, "b", "takes no moves"},
		{"incompatible", func(v *rebalance.View, tk *rebalance.Task) { v.Nodes[1].Caps = caps(t, "ppc64-power9") }, "b", "not compatible"},
		{"memory", func(v *rebalance.View, tk *rebalance.Task) { v.Nodes[1].FreeMemory = 300 << 20 }, "b", "free"},
		{"above the ceiling", func(v *rebalance.View, tk *rebalance.Task) { tk.CPU = 4 }, "b", "would rise to util 0.70"},
		{"herd: accepted moves count", func(v *rebalance.View, tk *rebalance.Task) {
			for i := 1; i < 4; i++ {
				v.Tasks[i].MovingTo = "b"
			}
		}, "b", "would rise to util 0.80"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := threeNodes(t)
			tk := v.Tasks[0]
			if tc.edit != nil {
				tc.edit(v, &tk)
			}
			err := p.Admit(v, &tk, tc.target)
			if !errors.Is(err, rebalance.ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("admit: %v, want ErrRefused saying %q", err, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*rebalance.Config)
		ok   bool
	}{
		{"default", func(*rebalance.Config) {}, true},
		{"low above high", func(c *rebalance.Config) { c.Low, c.Ceiling, c.High = 1.2, 1.2, 1.1 }, false},
		{"ceiling at high", func(c *rebalance.Config) { c.Ceiling = c.High }, false},
		{"ceiling below low", func(c *rebalance.Config) { c.Ceiling = c.Low - 0.01 }, false},
		{"no period", func(c *rebalance.Config) { c.Period = 0 }, false},
		{"jitter", func(c *rebalance.Config) { c.Jitter = 1.5 }, false},
		{"max backoff below backoff", func(c *rebalance.Config) { c.MaxBackoff = c.Backoff / 2 }, false},
		{"no rounds", func(c *rebalance.Config) { c.MaxRounds = 0 }, false},
		{"no bandwidth", func(c *rebalance.Config) { c.DefaultBandwidth = 0 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := rebalance.DefaultConfig()
			tc.mod(&cfg)
			_, err := rebalance.New(cfg)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, rebalance.ErrConfig)) {
				t.Fatalf("New: %v", err)
			}
		})
	}
	cfg := rebalance.DefaultConfig()
	for _, u := range []float64{0, 0.5, 0.999} {
		if d := cfg.NextRun(u); d < cfg.Period/2 || d >= cfg.Period*3/2 {
			t.Fatalf("NextRun(%v) = %v", u, d)
		}
	}
}

// TestSnapshotRoundTrip: a snapshot survives JSON (the agent hands it to the
// CLI that way) and plans the same as the live policy, backoffs included.
func TestSnapshotRoundTrip(t *testing.T) {
	p := policy(t, nil)
	p.Failed("big", "b", t0.Add(-time.Second))
	v := threeNodes(t)
	want := moves(p.Plan(v))
	if want != "small0:a>b" {
		t.Fatalf("live plan %s", want)
	}
	b, err := json.Marshal(&rebalance.Snapshot{Self: "a", Config: p.Config(), View: *v, Backoffs: p.Backoffs()})
	if err != nil {
		t.Fatal(err)
	}
	var s rebalance.Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	pl, err := s.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if got := moves(pl); got != want {
		t.Fatalf("snapshot plans %s, live policy %s", got, want)
	}
	if len(s.Backoffs) != 1 || s.Backoffs[0].Failures != 1 || s.View.Tasks[0].Manifest.GetHeader().GetArch() != image.Arch_ARCH_PPC64LE {
		t.Fatalf("snapshot lost state: %+v", s.Backoffs)
	}
}

func TestLevelling(t *testing.T) {
	// a (1.0) runs two 4-CPU tasks; b, c, d are at 0.2 with 2.4 CPUs of
	// headroom under the ceiling (1.10 x 0.4): no task fits under it, but
	// each fits on them without lifting them above a's 0.6 after the move.
	view := func(t *testing.T) *rebalance.View {
		return &rebalance.View{Now: t0, Nodes: []rebalance.Node{
			node(t, "a", "ppc64le-power9", 10, 10),
			node(t, "b", "ppc64le-power9", 10, 2),
			node(t, "c", "ppc64le-power9", 10, 2),
			node(t, "d", "ppc64le-power9", 10, 2),
		}, Tasks: []rebalance.Task{task(t, "t1", "a", "ppc64le", 4), task(t, "t2", "a", "ppc64le", 4)}}
	}
	pl := policy(t, func(c *rebalance.Config) { c.Levelling = false }).Plan(view(t))
	if moves(pl) != "-" || !strings.Contains(pl.Holds[0].Why, "2 have no compatible target") {
		t.Fatalf("without levelling: moves %s holds %+v", moves(pl), pl.Holds)
	}
	p := policy(t, func(c *rebalance.Config) { c.Levelling = true })
	v := view(t)
	pl = p.Plan(v)
	if len(pl.Proposals) != 1 {
		t.Fatalf("with levelling: moves %s holds %+v", moves(pl), pl.Holds)
	}
	pr := pl.Proposals[0]
	if !pr.Levelling || pr.TargetUtilAfter > pr.SourceUtilAfter || !strings.Contains(pr.Why, "levelling") {
		t.Fatalf("levelling proposal %+v", pr)
	}
	var tk rebalance.Task
	for _, x := range v.Tasks {
		if x.ID == pr.Task {
			tk = x
		}
	}
	if err := p.Admit(v, &tk, pr.Target); err != nil {
		t.Fatalf("the destination refuses a levelling move: %v", err)
	}
	if err := policy(t, func(c *rebalance.Config) { c.Levelling = false }).Admit(v, &tk, pr.Target); !errors.Is(err, rebalance.ErrRefused) {
		t.Fatalf("without levelling the destination admits it: %v", err)
	}
	// A regular move, when one exists, wins over a levelling one.
	v.Nodes = append(v.Nodes, node(t, "e", "ppc64le-power9", 40, 4))
	pl = p.Plan(v)
	if len(pl.Proposals) != 1 || pl.Proposals[0].Levelling || pl.Proposals[0].Target != "e" {
		t.Fatalf("with room on e: %+v", pl.Proposals)
	}
}
