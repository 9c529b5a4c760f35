package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/migrated/migrated/cluster"
)

func init() { rootCmd.AddCommand(newKeygenCmd()) }

func newKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen [-o FILE]",
		Short: "Write a new cluster secret",
		Long: `Write a new random cluster secret (32 bytes, base64) in the form
"migrated agent --secret-file" reads: to stdout, or with -o to a new file
of mode 600. Every agent of a cluster needs the same secret.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := cluster.NewSecret()
			if err != nil {
				return err
			}
			text := cluster.FormatSecret(s)
			if out == "" {
				_, err := fmt.Fprint(os.Stdout, text)
				return err
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			if _, err := f.WriteString(text); err != nil {
				f.Close()
				return fmt.Errorf("keygen: %w", err)
			}
			return f.Close()
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write to this new file (mode 600) instead of stdout")
	return cmd
}
