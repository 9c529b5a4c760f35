package hosts

import (
	"bytes"
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
			// Not to a restore stub or a frozen original: during a
			// cutover, wait (a little) until the task runs on one host.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				h, on := e.Where(pid)
				if h != nil {
					return h.Signal(pid, sig)
				}
				if len(on) == 0 {
					return fmt.Errorf("pid %d is on no host", pid)
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("pid %d: stopped on every host that has it (%v) for 10 s", pid, on)
				}
			}
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

// Where returns the host where the task pid runs, and the names of every
// host that has the PID. During a move two hosts have it: the source's
// task runs while the destination's restore stub is stopped, then the
// restored task runs while the original is stopped or dying. Where returns
// the one host that has the PID, else the one where it is neither stopped,
// traced-stopped nor dead; nil during the cutover (stopped on both) and
// when no host has it.
func (e *Env) Where(pid int) (*nshost.Host, []string) {
	var on []string
	var only, running *nshost.Host
	nrunning := 0
	for _, h := range e.Cluster.Hosts {
		if !h.HasPID(pid) {
			continue
		}
		on = append(on, h.Name)
		only = h
		switch ProcState(h, pid) {
		case 't', 'T', 'Z', 'X', 0:
		default:
			running = h
			nrunning++
		}
	}
	switch {
	case len(on) == 1:
		return only, on
	case nrunning == 1:
		return running, on
	}
	return nil, on
}

// ProcState returns the state letter of pid (as host h sees it) from the
// harness's view of /proc/PID/stat, or 0 when it is gone.
func ProcState(h *nshost.Host, pid int) byte {
	b, err := ProcFile(h, pid, "stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// ProcFile reads /proc/PID/name of pid as host h sees it, through the
// harness's /proc.
func ProcFile(h *nshost.Host, pid int, name string) ([]byte, error) {
	rp, err := h.RootPID(pid)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(fmt.Sprintf("/proc/%d/%s", rp, name))
}
