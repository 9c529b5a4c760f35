package sim

import (
	"os"
	"reflect"
	"testing"

	"github.com/migrated/migrated/compat"
	"github.com/migrated/migrated/image"
)

// TestKindsCompatibility pins the compatibility structure of the synthetic
// cluster as compat.Decide sees it: which task kind, started on which node
// kind, can run on which node kinds. The simulator is only as good as this
// structure is realistic.
func TestKindsCompatibility(t *testing.T) {
	le := []string{"ppc64le-power10", "ppc64le-power9"}
	want := map[string][]string{
		"ppc64le-power10/ppc64le-isa31": {"ppc64le-power10"}, // ARCH_3_1, MMA
		"ppc64le-power10/ppc64le":       le,
		"ppc64le-power9/ppc64le":        le,
		"ppc64-power9-compat/ppc32":     {"ppc64-power9-compat"}, // CONFIG_COMPAT
		"ppc64-power9-compat/ppc64":     {"ppc64-power9-compat"}, // vDSO of that kernel build
		"ppc64-power9/ppc64":            {"ppc64-power9", "ppc64-power10"},
		"ppc64-power10/ppc64":           {"ppc64-power9", "ppc64-power10"},
		"amd64-avx512/amd64-avx512":     {"amd64-avx512"}, // XSAVE AVX-512
		"amd64-avx512/amd64":            {"amd64-avx512", "amd64-avx2"},
		"amd64-avx512/i386":             {"amd64-avx512", "amd64-avx2"},
		"amd64-avx2/amd64":              {"amd64-avx512", "amd64-avx2"},
		"amd64-avx2/i386":               {"amd64-avx512", "amd64-avx2"},
	}
	kinds := DefaultKinds()
	got := map[string][]string{}
	for _, k := range kinds {
		for _, s := range k.Starts {
			m, err := NewManifest(s.Kind, k.Caps, 100, 2, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			key := k.Name + "/" + s.Kind
			got[key] = []string{}
			for _, d := range kinds {
				v := compat.Decide(m, d.Caps)
				switch v.GetKind() {
				case image.Verdict_ACCEPT, image.Verdict_TRANSLATE:
					got[key] = append(got[key], d.Name)
				default:
					if len(v.GetReasons()) == 0 {
						t.Errorf("%s on %s: %v without a reason", key, d.Name, v.GetKind())
					}
				}
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("compatibility\n got %v\nwant %v", got, want)
	}
}

// checkRun asserts what the issue accepts: every load shift evens out below
// cfg.Converged within maxPeriods, no task moves more than twice in a shift,
// nothing incompatible or non-converging is ever proposed, no oscillation.
func checkRun(t *testing.T, r *Result, maxPeriods int) {
	t.Helper()
	if r.IncompatibleMoves != 0 || r.NonConvergingMoves != 0 {
		t.Errorf("incompatible moves %d, non-converging moves %d", r.IncompatibleMoves, r.NonConvergingMoves)
	}
	if r.MaxMovesPerTaskPerShift > 2 {
		t.Errorf("a task moved %d times in one shift", r.MaxMovesPerTaskPerShift)
	}
	if r.Oscillations != 0 {
		t.Errorf("%d oscillations", r.Oscillations)
	}
	if r.Moves == 0 || r.MovesFailed == 0 {
		t.Errorf("moves %d, failed %d: the run exercised nothing", r.Moves, r.MovesFailed)
	}
	for _, s := range r.Shifts {
		t.Logf("phase %d (period %d, %d hot nodes): peak max/mean %.3f, floor %.3f, below %.3f after %d periods, then at most %.3f; final %.3f; %d moves, at most %d per task",
			s.Phase, s.StartPeriod, s.HotNodes, s.PeakMaxMean, s.Floor, s.Goal, s.PeriodsToConverge, s.MaxAfterConverged,
			s.FinalMaxMean, s.Moves, s.MaxMovesPerTask)
		if s.PeakMaxMean < 1.4 {
			t.Errorf("phase %d peaks at %.3f: the shift did not unbalance anything", s.Phase, s.PeakMaxMean)
		}
		if s.PeriodsToConverge < 0 || s.PeriodsToConverge > maxPeriods {
			t.Errorf("phase %d: below %.3f after %d periods, want at most %d; holds %+v",
				s.Phase, s.Goal, s.PeriodsToConverge, maxPeriods, s.Holds)
		}
		if s.FinalMaxMean >= s.Goal {
			t.Errorf("phase %d ends at %.3f", s.Phase, s.FinalMaxMean)
		}
	}
	t.Logf("moves %d (started %d, failed %d, refused %d), tasks moved %d, at most %d per task; whole-cluster policy step %.1f ms mean, %.1f ms max over %d steps; a node's own step %.2f ms mean, %.1f ms max over %d steps",
		r.Moves, r.MovesStarted, r.MovesFailed, r.MovesRefused, r.TasksMoved, r.MaxMovesPerTask, r.StepMS, r.StepMSMax, r.PolicySteps,
		r.NodeStepMS, r.NodeStepMSMax, r.NodeSteps)
}

// TestSimulatorReduced is the simulator in the default suite: 300 nodes,
// 6000 tasks, three load phases, once with each node planning on its own
// view (as agents do) and once with one plan of the whole cluster.
func TestSimulatorReduced(t *testing.T) {
	for _, local := range []bool{true, false} {
		t.Run(map[bool]string{true: "local views", false: "cluster plan"}[local], func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Nodes, cfg.Tasks, cfg.Steps, cfg.LocalViews = 300, 6000, 120, local
			r, err := Run(cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkRun(t, r, 25)
		})
	}
}

// TestSimulatorFull is the acceptance run: 1000 nodes, 20,000 tasks, four
// load phases. It takes about a minute on two busy cores; set
// MIGRATED_SIM_FULL=1 to run it (`migrated rebalance simulate` runs the same).
func TestSimulatorFull(t *testing.T) {
	if os.Getenv("MIGRATED_SIM_FULL") == "" {
		t.Skip("set MIGRATED_SIM_FULL=1 for the 1000-node, 20,000-task run")
	}
	r, err := Run(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, r, 25)
	for _, s := range r.Shifts {
		if s.Goal != r.Config.Converged {
			t.Errorf("phase %d is judged against %.3f, not %.2f: its floor is %.3f", s.Phase, s.Goal, r.Config.Converged, s.Floor)
		}
	}
}

func TestSimulatorDeterministic(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Nodes, cfg.Tasks, cfg.Steps, cfg.ShiftEvery = 60, 1200, 30, 15
	run := func(seed uint64) *Result {
		cfg.Seed = seed
		r, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// The measured step time is the one figure that may differ.
		r.StepMS, r.StepMSMax, r.NodeStepMS, r.NodeStepMSMax = 0, 0, 0, 0
		for i := range r.Series {
			r.Series[i].StepMS = 0
		}
		return r
	}
	a, b, c := run(3), run(3), run(4)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two runs with the same seed differ")
	}
	if reflect.DeepEqual(a.Series, c.Series) {
		t.Fatal("runs with different seeds are the same")
	}
}

// TestSimulatorCatchesIncompatible gives the policy a compatibility function
// that allows everything: the simulator's own check, which does not go
// through the policy, must catch the moves compat.Decide refuses.
func TestSimulatorCatchesIncompatible(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Nodes, cfg.Tasks, cfg.Steps = 60, 1200, 10
	cfg.Policy.Compatible = func(*image.Manifest, *compat.HostCaps) bool { return true }
	r, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.IncompatibleMoves == 0 {
		t.Fatalf("a policy that ignores compatibility made no incompatible move the simulator saw (moves %d)", r.Moves)
	}
	t.Logf("%d incompatible proposals caught, %d moves", r.IncompatibleMoves, r.Moves)
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, mod := range []func(*Config){
		func(c *Config) { c.Nodes = 1 },
		func(c *Config) { c.Epochs = 0 },
		func(c *Config) { c.FailureRate = 2 },
		func(c *Config) { c.MeanUtil = 0.01 }, // below the background load
		func(c *Config) { c.Policy.High = 0 },
	} {
		cfg := DefaultConfig()
		cfg.Nodes, cfg.Tasks, cfg.Steps = 10, 100, 2
		mod(&cfg)
		if _, err := Run(cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}
