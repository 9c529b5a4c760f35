package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/migrated/migrated/agent"
)

func init() { rootCmd.AddCommand(newAdoptCmd()) }

func newAdoptCmd() *cobra.Command {
	var name string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "adopt PID [--name N]",
		Short: "Mark a running process as a managed task, which the agent may move",
		Long: `adopt makes a running process a managed task of the local agent: the agent
may then move it by itself (migrated agent --rebalance). You must own the
process (or be root). A process with fds a move cannot carry (pipes, sockets,
terminals) is refused when a move is tried, and stays where it is.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			pid, err := strconv.Atoi(args[0])
			if err != nil || pid <= 0 {
				return usageError{fmt.Errorf("PID %q is not a process id", args[0])}
			}
			var t agent.ManagedTask
			if err := agentClient().Do(cmd.Context(), "POST", "/v1/tasks/adopt", agent.AdoptRequest{PID: pid, Name: name}, &t); err != nil {
				return err
			}
			return printTask(cmd, &t, asJSON)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "name of the task (default: the process's comm)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the task as JSON")
	return cmd
}
