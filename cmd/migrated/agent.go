package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/migrated/migrated/agent"
)

func init() { rootCmd.AddCommand(newAgentCmd()) }

func newAgentCmd() *cobra.Command {
	o := agent.DefaultOptions()
	var configFile, logLevel, logFormat string
	var nice int
	cmd := &cobra.Command{
		Use:   "agent --name N --bind IP[:PORT] [--join IP[:PORT]] [--secret-file F]",
		Short: "Run the migrated daemon on this host",
		Long: `Run the migrated daemon: join the cluster, advertise this host's
capabilities, and serve the control API on a unix socket.

Every flag can also be given in a --config file: a JSON object whose keys
are the flag names ({"name": "n1", "bind": "10.0.0.1", "join": ["10.0.0.2"]}).
Flags on the command line win over the file.

SIGINT or SIGTERM stops the agent gracefully: it leaves the cluster and
removes its control socket.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if configFile != "" {
				if err := applyConfigFile(cmd, configFile); err != nil {
					return usageError{err}
				}
			}
			log, err := newLogger(logLevel, logFormat)
			if err != nil {
				return usageError{err}
			}
			o.Control = controlPath
			if nice != 0 {
				if err := agent.Renice(nice); err != nil {
					log.Warn("nice", "err", err)
				}
			}
			a, err := agent.New(o, log)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return a.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "JSON file with flag values (keys are flag names)")
	f.StringVar(&o.Name, "name", o.Name, "name of this node in the cluster")
	f.StringVar(&o.Bind, "bind", "", "gossip address IP[:PORT] (port 7946 by default); QUIC uses the same IP")
	f.StringVar(&o.Advertise, "advertise", "", "address IP[:PORT] peers should use, if not --bind")
	f.StringSliceVar(&o.Join, "join", nil, "peers IP[:PORT] to join (repeat or comma-separate)")
	f.DurationVar(&o.JoinTimeout, "join-timeout", o.JoinTimeout, "give up joining after this long")
	f.StringVar(&o.SecretFile, "secret-file", "", "cluster secret (from `migrated keygen`), mode 600")
	f.BoolVar(&o.Insecure, "insecure", false, "run without a secret: unencrypted gossip, single machine only")
	f.StringVar(&o.Metrics, "metrics", "", "serve Prometheus /metrics on this IP:PORT")
	f.IntVar(&o.QUICPort, "quic-port", 0, "UDP port of the QUIC transport on the bind IP (default: gossip port + 1)")
	f.StringVar(&o.Gossip, "gossip", o.Gossip, "gossip timing profile: lan, or local (faster failure detection)")
	f.DurationVar(&o.Refresh, "refresh", o.Refresh, "interval of node metadata refreshes (load, free memory)")
	f.IntVar(&nice, "nice", 0, "scheduling niceness of the agent (0 keeps the caller's); a positive value makes pre-copy yield the CPU to the tasks it moves, at the cost of a longer move (agents return to nice 0 while a task waits on them)")
	f.StringVar(&o.CapsOverride, "caps-override", "", "JSON file of capability fields to advertise instead of the probed ones (tests)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	cmd.RegisterFlagCompletionFunc("gossip", cobra.FixedCompletions([]string{"lan", "local"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %v", level, err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// applyConfigFile sets every flag named in a JSON config file that the
// command line did not set. Unknown keys are errors, so that a typo does
// not silently leave a default in place.
func applyConfigFile(cmd *cobra.Command, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var kv map[string]json.RawMessage
	if err := json.Unmarshal(b, &kv); err != nil {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fl := cmd.Flags().Lookup(k)
		if fl == nil {
			fl = cmd.InheritedFlags().Lookup(k)
		}
		if fl == nil || k == "config" || k == "help" {
			return fmt.Errorf("--config %s: unknown key %q (keys are the flag names of `migrated agent`)", path, k)
		}
		if fl.Changed {
			continue
		}
		if err := setFlagFromJSON(fl, kv[k]); err != nil {
			return fmt.Errorf("--config %s: key %q: %w", path, k, err)
		}
	}
	return nil
}

func setFlagFromJSON(fl *pflag.Flag, raw json.RawMessage) error {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return err
	}
	var vals []string
	switch x := v.(type) {
	case []any:
		if !strings.HasSuffix(fl.Value.Type(), "Slice") {
			return fmt.Errorf("a list for a %s flag", fl.Value.Type())
		}
		for _, e := range x {
			vals = append(vals, fmt.Sprint(e))
		}
	case string, bool, json.Number:
		vals = []string{fmt.Sprint(x)}
	default:
		return fmt.Errorf("unsupported value %s", raw)
	}
	for _, s := range vals {
		if err := fl.Value.Set(s); err != nil {
			return err
		}
	}
	fl.Changed = true
	return nil
}
