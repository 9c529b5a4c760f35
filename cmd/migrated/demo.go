package main

import (
	"github.com/spf13/cobra"

	"github.com/migrated/migrated/e2e/hosts"
)

func init() { rootCmd.AddCommand(newDemoCmd()) }

func newDemoCmd() *cobra.Command {
	var size int
	var moveArgs []string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Move a real process between two local namespace hosts and print the report",
		Long: `demo starts two hosts on this machine (each its own network, PID and mount
namespace, joined by a veth pair), runs "migrated agent" in each, starts a
workload in the first (memory of --size-mib, a quarter zero pages, half
random, a quarter text, 1000 pages dirtied per second, a 1 ms heartbeat),
moves it live to the second with "migrated move", and lets it check its
memory and report the longest gap its heartbeat saw. Run it as root from
the repository (it compiles e2e/workloads/mixed.c with gcc).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return hosts.Demo(cmd.Context(), hosts.DemoOptions{SizeMiB: size, MoveArgs: moveArgs})
		},
	}
	cmd.Flags().IntVar(&size, "size-mib", 256, "memory of the workload to move")
	cmd.Flags().StringSliceVar(&moveArgs, "move-flag", nil, "extra flag for migrated move (repeatable), e.g. --move-flag=--downtime-limit=50ms")
	return cmd
}
