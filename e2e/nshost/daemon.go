package nshost

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// DaemonSpec describes a long-running program to start in a host, such as
// the migrated agent.
type DaemonSpec struct {
	Name string   // for the log file name: <log dir>/<host>-<Name>.log
	Path string   // the program
	Args []string // its arguments, without the program name
	Env  []string // nil: the harness's environment with TMPDIR set (see Cmd.Env)
	// LogDir receives the log file; empty means the host's work directory.
	LogDir string
	// Socket, when set, is a unix socket path inside the host that the
	// program creates: StartDaemon returns once it accepts connections.
	Socket string
	// ReadyTimeout bounds the wait for Socket. Zero means 15 s.
	ReadyTimeout time.Duration
}

// Daemon is a program started by StartDaemon.
type Daemon struct {
	*Cmd
	Host *Host
	Log  string // path of the log file (stdout and stderr)

	waitErr error
}

// StartDaemon starts spec in the host with its output in a log file and, if
// spec.Socket is set, waits until the socket accepts connections. If the
// program exits or the wait times out, it is killed and the error quotes the
// end of its log.
func (h *Host) StartDaemon(ctx context.Context, spec DaemonSpec) (*Daemon, error) {
	if spec.Name == "" {
		spec.Name = filepath.Base(spec.Path)
	}
	dir := spec.LogDir
	if dir == "" {
		dir = h.Dir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("nshost: log directory: %w", err)
	}
	logPath := filepath.Join(dir, h.Name+"-"+spec.Name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("nshost: log file: %w", err)
	}
	defer logf.Close() // the host has its own copy
	// The daemon outlives ctx only through Stop: it is not bound to ctx.
	cmd := h.Command(context.Background(), spec.Path, spec.Args...)
	cmd.Env = spec.Env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("nshost: start %s in host %s: %w", spec.Name, h.Name, err)
	}
	d := &Daemon{Cmd: cmd, Host: h, Log: logPath}
	if spec.Socket == "" {
		return d, nil
	}
	timeout := spec.ReadyTimeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := h.waitSocket(wctx, spec.Socket, cmd.Done()); err != nil {
		d.Stop(time.Second)
		return nil, fmt.Errorf("nshost: %s in host %s not ready: %w\n%s", spec.Name, h.Name, err, tail(logPath, 20))
	}
	return d, nil
}

// StartDaemons starts one daemon in every host, spec(h) saying what to run
// in host h, for instance the migrated agent with the host's address and its
// peers' as flags. On error the daemons already started are stopped.
func (c *Cluster) StartDaemons(ctx context.Context, spec func(h *Host) DaemonSpec) ([]*Daemon, error) {
	var ds []*Daemon
	for _, h := range c.Hosts {
		d, err := h.StartDaemon(ctx, spec(h))
		if err != nil {
			for _, d := range ds {
				d.Stop(time.Second)
			}
			return nil, err
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// Stop sends SIGTERM, then SIGKILL after grace, and waits. It returns how
// the daemon ended: nil for status 0, *ExitError otherwise. Stop may be
// called more than once.
func (d *Daemon) Stop(grace time.Duration) error {
	if !d.waited {
		if !d.Exited() {
			d.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.Done():
			case <-time.After(grace):
				d.Process.Kill()
			}
		}
		d.waitErr = d.Cmd.Wait()
	}
	return d.waitErr
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
