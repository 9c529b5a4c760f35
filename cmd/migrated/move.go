package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/agent"
	"github.com/migrated/migrated/agent/move"
)

func init() {
	rootCmd.AddCommand(newMoveCmd(), newCheckCmd(), newPsCmd(), newResolveCmd())
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func newMoveCmd() *cobra.Command {
	var req agent.MoveRequest
	var downtime time.Duration
	var bandwidth string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "move <pid> <host>",
		Short: "Move a running process to another host while it keeps running",
		Long: `move streams the process's memory to <host> round after round while it
runs (pre-copy), then freezes it, sends what is left and its state, and
resumes it there. Exactly one copy runs at the end: on <host>, or, if
anything fails before the cutover, the original, untouched.`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			pid, err := strconv.Atoi(args[0])
			if err != nil || pid <= 0 {
				return usageError{fmt.Errorf("bad pid %q", args[0])}
			}
			req.PID, req.Host = pid, args[1]
			req.DowntimeLimitMs = int(downtime / time.Millisecond)
			if bandwidth != "" {
				bw, err := parseBytes(bandwidth)
				if err != nil {
					return usageError{fmt.Errorf("--max-bandwidth: %w", err)}
				}
				req.MaxBandwidth = bw
			}
			switch req.Compress {
			case "s2", "zstd", "none":
			default:
				return usageError{fmt.Errorf("--compress must be s2, zstd or none")}
			}
			live := !asJSON && isTerminal(os.Stdout)
			var final agent.MoveEvent
			err = agentClient().Stream(cmd.Context(), "POST", "/v1/moves", req, func(line json.RawMessage) error {
				var ev agent.MoveEvent
				if err := json.Unmarshal(line, &ev); err != nil {
					return fmt.Errorf("agent answered %q: %w", line, err)
				}
				if ev.Progress != nil {
					if live {
						p := ev.Progress
						fmt.Printf("\r\033[Kround %d  sent %s  remaining %s  dirty %s/s  est. downtime %s",
							p.Round, humanBytes(p.SentBytes), humanBytes(p.RemainingBytes),
							humanBytes(uint64(p.DirtyRate)), p.EstimatedDowntime.Round(time.Millisecond))
					}
					return nil
				}
				final = ev
				return nil
			})
			if live {
				fmt.Print("\r\033[K")
			}
			if err != nil {
				return err
			}
			switch {
			case final.Report != nil:
				r := final.Report
				if asJSON {
					return json.NewEncoder(os.Stdout).Encode(r)
				}
				ratio := 0.0
				if r.MemoryBytes > 0 {
					ratio = float64(r.WireBytes) / float64(r.MemoryBytes)
				}
				fmt.Printf("moved pid %d to %s: new pid %d\n", r.PID, r.Host, r.NewPID)
				fmt.Printf("  downtime  %.1f ms\n  total     %.2f s\n  rounds    %d (%s tracking)\n  memory    %s\n  wire      %s (%.2fx memory)\n  move id   %s\n",
					r.DowntimeMs, r.TotalMs/1000, r.Rounds, r.Tracker, humanBytes(r.MemoryBytes), humanBytes(r.WireBytes), ratio, r.MoveID)
				printSignals(r)
				return nil
			case final.Error != nil:
				if asJSON {
					_ = json.NewEncoder(os.Stdout).Encode(final.Error)
				}
				return moveFailure(final.Error)
			}
			return errors.New("the agent ended the move without a report")
		},
	}
	cmd.Flags().DurationVar(&downtime, "downtime-limit", 300*time.Millisecond, "switch over when what is left can be sent in this long")
	cmd.Flags().StringVar(&req.Compress, "compress", "s2", "page compression: s2, zstd (slow links) or none")
	cmd.Flags().StringVar(&bandwidth, "max-bandwidth", "", "cap the page bytes on the wire per second (e.g. 100M, 1G)")
	cmd.Flags().BoolVar(&req.AutoConverge, "auto-converge", false, "throttle the task when pre-copy does not converge")
	cmd.Flags().BoolVar(&req.AllowNewPID, "allow-new-pid", false, "let a single-threaded task take a new PID when its own is taken")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as one JSON object")
	return cmd
}

// moveFailure turns the agent's error event into the command's error.
func moveFailure(e *agent.MoveError) error {
	var b strings.Builder
	b.WriteString(e.Message)
	if e.Code == "rejected" || e.Code == "failed" {
		b.WriteString("\nthe process keeps running here, untouched")
	}
	return exitError{code: exitFailure, err: errors.New(b.String())}
}

// parseBytes reads "100M", "1G", "512K" or a plain number of bytes.
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func newCheckCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check <pid> <host>",
		Short: "Ask <host> whether it would take the process, and why not",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			pid, err := strconv.Atoi(args[0])
			if err != nil || pid <= 0 {
				return usageError{fmt.Errorf("bad pid %q", args[0])}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			var rep struct {
				Verdict string `json:"verdict"`
				Reasons []struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"reasons"`
				Plan []string `json:"plan,omitempty"`
			}
			if err := agentClient().Do(ctx, "POST", "/v1/check", agent.CheckRequest{PID: pid, Host: args[1]}, &rep); err != nil {
				return err
			}
			if asJSON {
				if rep.Reasons == nil {
					rep.Reasons = []struct {
						Code    string `json:"code"`
						Message string `json:"message"`
					}{}
				}
				if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
					return err
				}
			} else {
				fmt.Printf("%s: %s\n", args[1], rep.Verdict)
				for _, r := range rep.Reasons {
					fmt.Printf("  %s: %s\n", r.Code, r.Message)
				}
				for _, p := range rep.Plan {
					fmt.Printf("  plan: %s\n", p)
				}
			}
			if rep.Verdict == "reject" {
				return exitError{code: exitFailure, err: fmt.Errorf("%s refuses pid %d", args[1], pid)}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"verdict": ..., "reasons": [{"code", "message"}]}`)
	return cmd
}

func newPsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List the local agent's managed tasks (CPU, memory) and the moves in flight",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			var moves []agent.MoveStatus
			if err := agentClient().Get(ctx, "/v1/moves", &moves); err != nil {
				return err
			}
			var tasks []agent.ManagedTask
			if err := agentClient().Get(ctx, "/v1/tasks", &tasks); err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(os.Stdout).Encode(struct {
					Tasks []agent.ManagedTask `json:"tasks"`
					Moves []agent.MoveStatus  `json:"moves"`
				}{tasks, moves})
			}
			if len(tasks) == 0 {
				fmt.Println("no managed tasks")
			} else {
				fmt.Printf("%-16s %-8s %-6s %-10s %-12s %s\n", "TASK", "PID", "CPU", "RSS", "MOVED FROM", "MOVING TO")
				for _, t := range tasks {
					from, to := "-", "-"
					if t.MovedFrom != "" {
						from = t.MovedFrom
					}
					if t.MovingTo != "" {
						to = t.MovingTo
					}
					fmt.Printf("%-16s %-8d %-6.2f %-10s %-12s %s\n", t.Name, t.PID, t.CPU, humanBytes(t.RSS), from, to)
				}
			}
			if len(moves) == 0 {
				fmt.Println("no moves in flight")
				return nil
			}
			fmt.Printf("%-8s %-12s %-10s %-8s %s\n", "PID", "HOST", "STATE", "ROUND", "REMAINING")
			for _, m := range moves {
				round, rem := "-", "-"
				if m.Progress != nil {
					round, rem = strconv.Itoa(m.Progress.Round), humanBytes(m.Progress.RemainingBytes)
				}
				fmt.Printf("%-8d %-12s %-10s %-8s %s\n", m.PID, m.Host, m.State, round, rem)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"tasks": [...], "moves": [...]}`)
	return cmd
}

func newResolveCmd() *cobra.Command {
	var thaw, kill, asJSON bool
	cmd := &cobra.Command{
		Use:   "resolve <move-id> [--thaw | --kill]",
		Short: "Decide a move in doubt (COMMIT sent, no answer): ask the destination again, or force",
		Long: `A move is in doubt when the source sent COMMIT and lost the destination
before hearing RUNNING: the original is kept frozen, neither running nor
killed, so that two copies never run. resolve asks the destination again
and acts on a definite answer. --kill (the operator knows the destination
runs the task) and --thaw (the operator knows it does not) act without
asking. Run it on the source host, as root.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			action := "ask"
			switch {
			case thaw && kill:
				return usageError{fmt.Errorf("--thaw and --kill exclude each other")}
			case thaw:
				action = "thaw"
			case kill:
				action = "kill"
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			var ev agent.MoveEvent
			if err := agentClient().Do(ctx, "POST", "/v1/moves/"+args[0]+"/resolve", agent.ResolveRequest{Action: action}, &ev); err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(os.Stdout).Encode(ev)
			}
			switch {
			case ev.Report != nil:
				fmt.Printf("move %s: the task runs on %s as pid %d; the original was killed\n", args[0], ev.Report.Host, ev.Report.NewPID)
				printSignals(ev.Report)
			case ev.Error != nil:
				fmt.Printf("move %s: %s\n", args[0], ev.Error.Message)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&thaw, "thaw", false, "thaw the original without asking (the destination does not run it)")
	cmd.Flags().BoolVar(&kill, "kill", false, "kill the original without asking (the destination runs it)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printSignals tells what became of the signals sent to the original during
// the cutover, and any warning of the report.
func printSignals(r *move.Report) {
	if r.SignalsForwarded > 0 {
		fmt.Printf("  signals   %d sent to the original during the cutover, forwarded\n", r.SignalsForwarded)
	}
	if r.SignalsLost > 0 {
		fmt.Printf("  warning:  %d signals sent to the original during the cutover were lost\n", r.SignalsLost)
	}
	if r.Warning != "" {
		fmt.Printf("  warning:  %s\n", r.Warning)
	}
}
