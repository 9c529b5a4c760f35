package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/migrated/migrated/agent"
	"github.com/migrated/migrated/rebalance"
	"github.com/migrated/migrated/rebalance/sim"
)

// rebalanceSnapshotPath is the agent control endpoint that answers with a
// rebalance.Snapshot as JSON: Self (its node name); Config (the policy
// config it runs, also when --rebalance is off); View.Now; View.Nodes, every
// live member from its gossip metadata (capabilities, CPUs, load including
// the moves in flight toward it, free memory, measured bandwidth);
// View.Tasks, its own managed tasks (manifest, CPU share, RSS, dirty rate,
// last moved, move in flight); Backoffs, its policy's Policy.Backoffs().
const rebalanceSnapshotPath = "/v1/rebalance/snapshot"

// fetchRebalanceSnapshot asks the local agent what its rebalancing policy
// sees now: GET rebalanceSnapshotPath on the control socket. It is all
// `migrated rebalance --dry-run` needs from the agent; --view FILE reads the
// same JSON from a file instead. A variable so that tests can replace it.
var fetchRebalanceSnapshot = func(ctx context.Context) (*rebalance.Snapshot, error) {
	var s rebalance.Snapshot
	if err := agentClient().Get(ctx, rebalanceSnapshotPath, &s); err != nil {
		var ae *agent.APIError
		if errors.Is(err, agent.ErrNotFound) || (errors.As(err, &ae) && ae.Status == http.StatusNotFound) {
			return nil, fmt.Errorf("%w (this agent does not serve %s yet: pass --view FILE)", err, rebalanceSnapshotPath)
		}
		return nil, err
	}
	return &s, nil
}

func init() {
	rootCmd.AddCommand(newRebalanceCmd())
}

func newRebalanceCmd() *cobra.Command {
	var (
		dryRun, asJSON, all bool
		viewFile            string
	)
	cmd := &cobra.Command{
		Use:   "rebalance --dry-run [--json] [--all] [--view FILE]",
		Short: "Show which managed task this node would move now, where, and why",
		Long: `rebalance shows what the rebalancing policy would do now: the move this node
would start (at most one per period), or why it starts none. The agent runs the
same policy on a timer when started with --rebalance; this command never moves
anything. --all shows the rows of every hot node the view knows tasks of.
--view FILE plans from a saved rebalance.Snapshot (JSON) instead of asking the
local agent.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !dryRun {
				return errors.New("rebalance only plans (--dry-run); the agent moves tasks by itself when started with --rebalance")
			}
			snap, err := loadSnapshot(cmd.Context(), viewFile)
			if err != nil {
				return err
			}
			plan, err := snap.Plan()
			if err != nil {
				return err
			}
			return printPlan(cmd.OutOrStdout(), snap, plan, asJSON, all)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&dryRun, "dry-run", false, "plan only (required: this command never moves anything)")
	f.BoolVar(&asJSON, "json", false, "print the plan as JSON")
	f.BoolVar(&all, "all", false, "show every hot node's row, not only this node's")
	f.StringVar(&viewFile, "view", "", "plan from this rebalance.Snapshot JSON file instead of asking the agent")
	cmd.AddCommand(newRebalanceSimulateCmd())
	return cmd
}

func loadSnapshot(ctx context.Context, file string) (*rebalance.Snapshot, error) {
	if file == "" {
		if ctx == nil {
			ctx = context.Background()
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := fetchRebalanceSnapshot(ctx)
		if err != nil {
			return nil, fmt.Errorf("ask the agent for its rebalancing view: %w", err)
		}
		return s, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read view: %w", err)
	}
	s := &rebalance.Snapshot{Config: rebalance.DefaultConfig()}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("decode view %s: %w", file, err)
	}
	return s, nil
}

// dryRunOutput is the JSON of `rebalance --dry-run --json`.
type dryRunOutput struct {
	Self string `json:"self"`
	// Move is this node's proposal, or null.
	Move *rebalance.Proposal `json:"move"`
	// Hold says why this node, hot, proposes nothing; empty otherwise.
	Hold string          `json:"hold,omitempty"`
	Plan *rebalance.Plan `json:"plan,omitempty"` // with --all
}

func printPlan(w io.Writer, snap *rebalance.Snapshot, plan *rebalance.Plan, asJSON, all bool) error {
	out := dryRunOutput{Self: snap.Self, Move: plan.For(snap.Self)}
	for _, h := range plan.Holds {
		if h.Node == snap.Self {
			out.Hold = h.Why
		}
	}
	if all {
		out.Plan = plan
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(w, "mean utilisation %.2f, hot above %.2f (%d nodes, %d tasks in view)\n",
		plan.MeanUtil, plan.HotUtil, len(snap.View.Nodes), len(snap.View.Tasks))
	switch {
	case out.Move != nil:
		fmt.Fprintf(w, "%s would move %s to %s: %s\n", snap.Self, out.Move.Task, out.Move.Target, out.Move.Why)
	case out.Hold != "":
		fmt.Fprintf(w, "%s would move nothing: %s\n", snap.Self, out.Hold)
	default:
		fmt.Fprintf(w, "%s would move nothing: it is not hot\n", snap.Self)
	}
	if all {
		for _, p := range plan.Proposals {
			if p.Source != snap.Self {
				fmt.Fprintf(w, "%s would move %s to %s: %s\n", p.Source, p.Task, p.Target, p.Why)
			}
		}
		for _, h := range plan.Holds {
			if h.Node != snap.Self {
				fmt.Fprintf(w, "%s would move nothing: %s\n", h.Node, h.Why)
			}
		}
	}
	return nil
}

func newRebalanceSimulateCmd() *cobra.Command {
	cfg := sim.DefaultConfig()
	var asJSON, series, clusterPlan bool
	var seed uint64
	cmd := &cobra.Command{
		Use:   "simulate --nodes N --tasks M [--seed S] [--steps K] [--json]",
		Short: "Run the rebalancing policy over a synthetic cluster",
		Long: `simulate runs the same policy code the agent runs over a synthetic cluster of
mixed POWER (ppc64le POWER9/POWER10, big-endian ppc64 with and without
CONFIG_COMPAT) and amd64 nodes whose tasks carry real capability manifests. The
load shifts every --shift-every periods (a hot spot moves), moves take their
pre-copy time and some fail, and every proposed move is checked again with
compat.Decide. Deterministic for a seed, but for the measured step times.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Seed = seed
			cfg.LocalViews = !clusterPlan
			r, err := sim.Run(cfg)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			printSimulation(w, r, series)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, "number of nodes")
	f.IntVar(&cfg.Tasks, "tasks", cfg.Tasks, "number of managed tasks")
	f.Uint64Var(&seed, "seed", cfg.Seed, "random seed")
	f.IntVar(&cfg.Steps, "steps", cfg.Steps, "policy periods to simulate")
	f.IntVar(&cfg.ShiftEvery, "shift-every", cfg.ShiftEvery, "periods between load shifts")
	f.Float64Var(&cfg.HotFraction, "hot-fraction", cfg.HotFraction, "fraction of the nodes in the hot spot")
	f.Float64Var(&cfg.HotFactor, "hot-factor", cfg.HotFactor, "CPU factor of the tasks caught in the hot spot")
	f.Float64Var(&cfg.FailureRate, "failure-rate", cfg.FailureRate, "probability that a move fails")
	f.BoolVar(&cfg.Policy.Levelling, "levelling", cfg.Policy.Levelling, "allow levelling moves (rebalance.Config.Levelling; --levelling=false forbids them)")
	f.BoolVar(&clusterPlan, "cluster-plan", false, "every node executes its row of one whole-cluster plan (default: each node plans on its own view)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON (with the time series)")
	f.BoolVar(&series, "series", false, "print the time series too")
	return cmd
}

func printSimulation(w io.Writer, r *sim.Result, series bool) {
	c := r.Config
	fmt.Fprintf(w, "%d nodes, %d tasks, seed %d, %d periods of %v, load shift every %d periods\n",
		c.Nodes, c.Tasks, c.Seed, c.Steps, c.Policy.Period, c.ShiftEvery)
	fmt.Fprintf(w, "final max/mean %.3f\nmoves %d (started %d, failed %d, refused by the destination %d), tasks moved %d\n",
		r.FinalMaxMean, r.Moves, r.MovesStarted, r.MovesFailed, r.MovesRefused, r.TasksMoved)
	fmt.Fprintf(w, "max moves per task %d (in one shift %d), oscillations %d\n", r.MaxMovesPerTask, r.MaxMovesPerTaskPerShift, r.Oscillations)
	fmt.Fprintf(w, "incompatible moves %d, non-converging moves %d\n", r.IncompatibleMoves, r.NonConvergingMoves)
	fmt.Fprintf(w, "policy step for the whole cluster %.1f ms mean, %.1f ms max", r.StepMS, r.StepMSMax)
	if r.NodeSteps > 0 {
		fmt.Fprintf(w, "; one node's step %.2f ms mean, %.1f ms max", r.NodeStepMS, r.NodeStepMSMax)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "phase\tstart\thot nodes\tpeak max/mean\tfloor\tgoal\tperiods to goal\tthen at most\tfinal\tmoves\tmax moves/task")
	for _, s := range r.Shifts {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.3f\t%.3f\t%.3f\t%d\t%.3f\t%.3f\t%d\t%d\n", s.Phase, s.StartPeriod, s.HotNodes,
			s.PeakMaxMean, s.Floor, s.Goal, s.PeriodsToConverge, s.MaxAfterConverged, s.FinalMaxMean, s.Moves, s.MaxMovesPerTask)
	}
	tw.Flush()
	if series {
		fmt.Fprintln(tw, "period\tphase\tmax/mean\tmax\tmean\tstarted\tmoves\tfailed\trefused\tin flight\tstep ms")
		for _, s := range r.Series {
			fmt.Fprintf(tw, "%d\t%d\t%.3f\t%.3f\t%.3f\t%d\t%d\t%d\t%d\t%d\t%.1f\n", s.Period, s.Phase, s.MaxMean,
				s.MaxUtil, s.MeanUtil, s.Started, s.Moves, s.Failed, s.Refused, s.InFlight, s.StepMS)
		}
		tw.Flush()
	}
}
