package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/migrated/migrated/agent"
	"github.com/migrated/migrated/compat"
)

func init() { rootCmd.AddCommand(newDoctorCmd()) }

func newDoctorCmd() *cobra.Command {
	var asJSON, fromAgent bool
	cmd := &cobra.Command{
		Use:   "doctor [--json] [--agent]",
		Short: "Check what this host can do for moves, and what is missing",
		Long: `Probe this host's capabilities and kernel features (as "criu check" does)
and say, for each missing one, what it costs. Exits with 1 when a feature
that moves require is missing.

Without --agent the probe runs in this process, with its privileges; with
--agent, the local agent answers with what it probed at start-up.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r agent.DoctorReport
			if fromAgent {
				if err := agentClient().Get(cmd.Context(), "/v1/doctor", &r); err != nil {
					return err
				}
			} else {
				h, notes, err := compat.ProbeWithNotes()
				if err != nil {
					return err
				}
				r = agent.Doctor(h, notes)
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				printDoctor(os.Stdout, r)
			}
			if !r.OK() {
				return exitError{exitFailure, errors.New("a feature moves require is missing on this host")}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: the capabilities and every check")
	cmd.Flags().BoolVar(&fromAgent, "agent", false, "ask the local agent instead of probing here")
	return cmd
}

func printDoctor(w io.Writer, r agent.DoctorReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Status, c.Name, c.Detail)
		if c.Cost != "" {
			fmt.Fprintf(tw, "\t\tcost: %s\n", c.Cost)
		}
	}
	tw.Flush()
}
