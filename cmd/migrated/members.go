package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/migrated/migrated/cluster"
	"github.com/migrated/migrated/image"
)

func init() { rootCmd.AddCommand(newMembersCmd()) }

func newMembersCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "members [--json]",
		Short: "List the cluster members the local agent knows of",
		Long: `List the cluster members the local agent knows of: alive ones, and those
that left or failed since it started, with what each advertises.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ms []cluster.Member
			if err := agentClient().Get(cmd.Context(), "/v1/members", &ms); err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(ms)
			}
			return printMembers(os.Stdout, ms)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (the agent's cluster.Member list)")
	return cmd
}

func printMembers(w io.Writer, ms []cluster.Member) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tSTATUS\tARCH\tENDIAN\tPAGE\t32-BIT\tLOAD\tFREE MEM\tTASKS")
	for _, m := range ms {
		name := m.Name
		if m.Local {
			name += " *"
		}
		if m.Meta == nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\t?\t?\t?\t?\t?\t?\t? (%s)\n", name, m.Addr, m.State, m.MetaError)
			continue
		}
		c := m.Meta.Caps
		compat32 := "no"
		if c.Compat32 {
			compat32 = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%d\n", name, m.Addr, m.State,
			archName(c.Arch), endianName(c.Endian), humanBytes(c.PageSize), compat32,
			m.Meta.Load[0], humanBytes(m.Meta.FreeMemory), m.Meta.Tasks)
	}
	return tw.Flush()
}

func archName(a image.Arch) string {
	return strings.ToLower(strings.TrimPrefix(a.String(), "ARCH_"))
}

func endianName(e image.Endian) string {
	return strings.ToLower(strings.TrimPrefix(e.String(), "ENDIAN_"))
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if v == float64(uint64(v)) {
		return fmt.Sprintf("%d %ciB", uint64(v), "KMGTPE"[exp])
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[exp])
}
