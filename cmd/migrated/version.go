package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/migrated/migrated/agent"
)

func init() { rootCmd.AddCommand(newVersionCmd()) }

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print the version of this binary and of the local agent",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := struct {
				Client agent.VersionInfo  `json:"client"`
				Agent  *agent.VersionInfo `json:"agent,omitempty"`
				Error  string             `json:"agent_error,omitempty"`
			}{Client: agent.VersionInfo{Version: agent.Version(), Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}}
			ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
			defer cancel()
			var av agent.VersionInfo
			if err := agentClient().Get(ctx, "/v1/version", &av); err == nil {
				v.Agent = &av
			} else if errors.Is(err, agent.ErrAgentNotRunning) {
				v.Error = fmt.Sprintf("not running on %s", controlPath)
			} else {
				v.Error = err.Error()
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			fmt.Printf("migrated %s (%s, %s/%s)\n", v.Client.Version, v.Client.Go, v.Client.OS, v.Client.Arch)
			if v.Agent != nil {
				fmt.Printf("agent %s on node %q (%s, %s/%s)\n", v.Agent.Version, v.Agent.Node, v.Agent.Go, v.Agent.OS, v.Agent.Arch)
			} else {
				fmt.Printf("agent: %s\n", v.Error)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
