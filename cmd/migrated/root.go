package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/migrated/migrated/agent"
)

// rootCmd is the migrated command. Each command lives in its own file
// (cmd/migrated/<command>.go) and adds itself with rootCmd.AddCommand in an
// init function. Shell completion comes from cobra's `completion` command.
var rootCmd = &cobra.Command{
	Use:   "migrated",
	Short: "Live process migration between Linux hosts",
	Long: `migrated moves a running Linux process from one host to another while it
keeps running. Each host runs "migrated agent"; the other commands talk to
the local agent over its control socket.`,
	SilenceUsage:  true,
	SilenceErrors: true,
}

// controlPath is the global --control flag: the local agent's socket.
var controlPath string

func init() {
	rootCmd.PersistentFlags().StringVar(&controlPath, "control", agent.ControlSocket(),
		"control socket of the local agent (default from "+agent.ControlEnv+")")
	rootCmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
}

// agentClient is a client of the local agent at --control.
func agentClient() *agent.Client { return agent.NewClient(controlPath) }

// Exit codes.
const (
	exitFailure         = 1 // the command failed
	exitUsage           = 2 // bad flags or arguments
	exitAgentNotRunning = 3 // nothing answers on the control socket
	exitNotPermitted    = 4 // the agent refused the caller
)

// usageError marks an error in how the command was called.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// exitError carries an explicit exit code (for a command whose failure is
// a result, like doctor finding a required feature missing).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee exitError
	var ue usageError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, agent.ErrAgentNotRunning):
		return exitAgentNotRunning
	case errors.Is(err, agent.ErrNotPermitted):
		return exitNotPermitted
	}
	return exitFailure
}

// usageArgs wraps a cobra positional-argument check so that its errors
// exit with exitUsage.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
