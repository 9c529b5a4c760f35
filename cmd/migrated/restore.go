package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/migrated/migrated/restore"
)

func init() { rootCmd.AddCommand(newRestoreCmd()) }

func newRestoreCmd() *cobra.Command {
	var asJSON, allowNewPID bool
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Rebuild a process from an image and let it run",
		Long: `restore rebuilds a process from an image written by "migrated checkpoint",
with the same PID and TIDs, and resumes it. It prints the new process's PID.
A corrupt or truncated image, a taken PID or a file that changed since the
checkpoint is refused, and a failed restore leaves no process behind.
Runs locally, as root.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			p, _, err := restore.FromImage(f, restore.Options{AllowNewPID: allowNewPID})
			if err != nil {
				return fmt.Errorf("restore %s: %w", args[0], err)
			}
			if err := p.Resume(); err != nil {
				return fmt.Errorf("restore %s: %w", args[0], err)
			}
			if asJSON {
				return json.NewEncoder(os.Stdout).Encode(struct {
					PID int `json:"pid"`
				}{p.PID})
			}
			fmt.Println(p.PID)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"pid": N}`)
	cmd.Flags().BoolVar(&allowNewPID, "allow-new-pid", false, "let a single-threaded process take a new PID when its own is taken")
	return cmd
}
