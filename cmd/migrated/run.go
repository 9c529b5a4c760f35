package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/migrated/migrated/agent"
)

func init() {
	rootCmd.AddCommand(newRunCmd())
	// The rebalancer's flags live on `migrated agent` (they set
	// agent.RebalanceDefaults before the agent starts).
	for _, c := range rootCmd.Commands() {
		if c.Name() == "agent" {
			f := c.Flags()
			f.BoolVar(&agent.RebalanceDefaults.Enabled, "rebalance", false, "move managed tasks off this host by itself when it runs hot")
			f.DurationVar(&agent.RebalanceDefaults.Interval, "rebalance-interval", agent.RebalanceDefaults.Interval, "period of the rebalancing policy (jittered by half)")
			f.DurationVar(&agent.RebalanceDefaults.Cooldown, "rebalance-cooldown", 0, "how long a task that arrived by a move stays put (0: the policy's default, 60s)")
		}
	}
}

func newRunCmd() *cobra.Command {
	var name, logFile string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "run [--name N] [--log FILE] -- CMD ARGS...",
		Short: "Start a task under the local agent's care (a managed task, which the agent may move)",
		Long: `run asks the local agent to start CMD as a managed task: its stdin is /dev/null
and its output goes to a log file in the agent's state directory, so that it
holds only what a move can carry (--log FILE appends the output to FILE
instead: a move reopens it by path, so a task that may move between hosts
needs a log on storage they share). The agent may move managed tasks to other
hosts by itself (migrated agent --rebalance). The environment and working
directory are this command's.`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, _ := os.Getwd()
			var t agent.ManagedTask
			if logFile != "" {
				if abs, err := filepath.Abs(logFile); err == nil {
					logFile = abs
				}
			}
			req := agent.RunRequest{Name: name, Argv: args, Env: os.Environ(), Dir: dir, Log: logFile}
			if err := agentClient().Do(cmd.Context(), "POST", "/v1/tasks", req, &t); err != nil {
				return err
			}
			return printTask(cmd, &t, asJSON)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "name of the task (default: the command's base name)")
	cmd.Flags().StringVar(&logFile, "log", "", "append the task's output to this file (default: a file in the agent's state directory)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the task as JSON")
	return cmd
}

func printTask(cmd *cobra.Command, t *agent.ManagedTask, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(t)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s pid %d", t.Name, t.PID)
	if t.Log != "" {
		fmt.Fprintf(cmd.OutOrStdout(), " log %s", t.Log)
	}
	fmt.Fprintln(cmd.OutOrStdout())
	return nil
}
