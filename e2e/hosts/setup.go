package hosts

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/migrated/migrated/e2e/nshost"
	"github.com/migrated/migrated/e2e/workload"
)

// Env is a cluster of namespace hosts with an agent in each.
type Env struct {
	Cluster *nshost.Cluster
	Agents  []*nshost.Daemon
	Bin     string // the migrated binary
	Dir     string
}

// Options of Setup.
type Options struct {
	Hosts int
	// Bin is the migrated binary (it must import e2e/nshost, as
	// cmd/migrated does, so that it can be a host's init).
	Bin string
	Dir string
	// AgentEnv adds environment variables per host index (test hooks).
	AgentEnv func(i int) []string
	// AgentArgs adds flags per host index.
	AgentArgs func(i int) []string
}

// Setup starts the hosts and an agent in each, all joined into one cluster
// with a fresh secret, and waits until every agent sees every other.
func Setup(ctx context.Context, o Options) (*Env, error) {
	if o.Hosts == 0 {
		o.Hosts = 2
	}
	c, err := nshost.New(ctx, nshost.Config{Hosts: o.Hosts, Dir: o.Dir})
	if err != nil {
		return nil, err
	}
	e := &Env{Cluster: c, Bin: o.Bin, Dir: c.Dir()}
	secret := filepath.Join(c.Dir(), "secret")
	out, err := exec.CommandContext(ctx, o.Bin, "keygen").Output()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("keygen: %w", err)
	}
	if err := os.WriteFile(secret, out, 0o600); err != nil {
		c.Close()
		return nil, err
	}
	first := c.Hosts[0].Addr.String()
	idx := map[*nshost.Host]int{}
	for i, h := range c.Hosts {
		idx[h] = i
	}
	e.Agents, err = c.StartDaemons(ctx, func(h *nshost.Host) nshost.DaemonSpec {
		i := idx[h]
		args := []string{"agent", "--name", h.Name, "--bind", h.Addr.String(), "--secret-file", secret}
		if i > 0 {
			args = append(args, "--join", first)
		}
		if o.AgentArgs != nil {
			args = append(args, o.AgentArgs(i)...)
		}
		var env []string
		if o.AgentEnv != nil {
			if extra := o.AgentEnv(i); len(extra) > 0 {
				env = append(append(os.Environ(), "TMPDIR="+h.TmpDir()), extra...)
			}
		}
		return nshost.DaemonSpec{Name: "agent", Path: o.Bin, Args: args, Env: env,
			LogDir: filepath.Join(c.Dir(), "logs"), Socket: "/run/migrated/migrated.sock"}
	})
	if err != nil {
		c.Close()
		return nil, err
	}
	// Wait until every agent lists every host alive.
	deadline := time.Now().Add(20 * time.Second)
	for _, h := range c.Hosts {
		for {
			out, _ := h.Command(ctx, o.Bin, "members", "--json").Output()
			if countAlive(out) == len(c.Hosts) {
				break
			}
			if time.Now().After(deadline) {
				e.Close()
				return nil, fmt.Errorf("host %s: the cluster did not form in 20 s: %s", h.Name, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return e, nil
}

// Close stops the agents and removes the hosts.
func (e *Env) Close() {
	for _, a := range e.Agents {
		a.Stop(5 * time.Second)
	}
	e.Cluster.Close()
}

// Host returns host i.
func (e *Env) Host(i int) *nshost.Host { return e.Cluster.Hosts[i] }

// WorkloadOpts starts a workload inside host h, and signals it wherever it
// lives now (it may have moved to another host with the same PID).
func (e *Env) WorkloadOpts(ctx context.Context, h *nshost.Host, args ...string) workload.Opts {
	return workload.Opts{
		Args: args,
		Launch: func(l workload.Launch) (int, error) {
			cmd := h.Command(ctx, l.Argv[0], l.Argv[1:]...)
			cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr, cmd.Credential = l.Env, l.Dir, l.Output, l.Output, l.Cred
			if err := cmd.Start(); err != nil {
				return 0, err
			}
			return cmd.Process.PID, nil
		},
		Signal: func(pid int, sig syscall.Signal) error {
			for _, x := range e.Cluster.Hosts {
				if x.HasPID(pid) {
					return x.Signal(pid, sig)
				}
			}
			return fmt.Errorf("pid %d is on no host", pid)
		},
		ReadyTimeout:  120 * time.Second,
		FinishTimeout: 120 * time.Second,
	}
}

// countAlive counts the members `migrated members --json` lists as alive.
func countAlive(out []byte) int {
	var ms []struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(out, &ms) != nil {
		return 0
	}
	n := 0
	for _, m := range ms {
		if m.Status == "alive" {
			n++
		}
	}
	return n
}
