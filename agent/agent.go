package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/migrated/migrated/cluster"
	"github.com/migrated/migrated/compat"
)

// Agent is one running daemon.
type Agent struct {
	opts    Options
	log     *slog.Logger
	caps    *compat.HostCaps
	notes   compat.ProbeNotes
	secret  []byte
	bind    netip.AddrPort
	adv     netip.AddrPort
	quic    netip.AddrPort
	metrics *metrics
	started time.Time

	cluster atomic.Pointer[cluster.Cluster]
	ready   chan struct{}

	mu          sync.Mutex
	taskCounter func() int
}

// Service is something with the agent's lifetime, registered by another
// file of this package (RegisterService): the QUIC transport, the move
// state machine, the journal. Start runs after the cluster is up and before
// the control socket serves; the stop functions run in reverse order at
// shutdown, before the agent leaves the cluster.
type Service struct {
	Name  string
	Start func(ctx context.Context, a *Agent) (stop func(context.Context) error, err error)
}

var (
	servicesMu sync.Mutex
	services   []Service
)

// RegisterService adds a service, from an init function. Services start in
// file-name order of their init functions (Go's order); a service that
// needs another must say so in its Start by failing clearly.
func RegisterService(s Service) {
	servicesMu.Lock()
	defer servicesMu.Unlock()
	services = append(services, s)
}

// New validates opts, reads the secret and probes the host. It does not
// touch the network or the control socket (Run does).
func New(opts Options, log *slog.Logger) (*Agent, error) {
	if log == nil {
		log = slog.Default()
	}
	if opts.Name == "" {
		return nil, fmt.Errorf("%w: --name is required", ErrOptions)
	}
	if opts.Control == "" {
		opts.Control = ControlSocket()
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 5 * time.Second
	}
	bind, adv, quic, err := opts.addrs()
	if err != nil {
		return nil, err
	}
	if quic.Addr().IsUnspecified() {
		return nil, fmt.Errorf("%w: --bind %s is unspecified: give --advertise IP so peers can reach this agent", ErrOptions, bind.Addr())
	}
	a := &Agent{
		opts: opts, log: log.With("node", opts.Name),
		bind: bind, adv: adv, quic: quic,
		metrics: newMetrics(), ready: make(chan struct{}), started: time.Now(),
	}
	switch {
	case opts.Insecure && opts.SecretFile != "":
		return nil, fmt.Errorf("%w: --insecure and --secret-file exclude each other", ErrOptions)
	case opts.Insecure:
		a.log.Warn("running without a cluster secret: gossip is unencrypted and any host can join; single machine only")
	case opts.SecretFile == "":
		return nil, fmt.Errorf("%w: --secret-file is required (make one with `migrated keygen`), or --insecure on a single machine", ErrOptions)
	default:
		if a.secret, err = cluster.ReadSecretFile(opts.SecretFile); err != nil {
			return nil, err
		}
	}
	if a.caps, a.notes, err = compat.ProbeWithNotes(); err != nil {
		return nil, err
	}
	if opts.CapsOverride != "" {
		if err := overrideCaps(a.caps, opts.CapsOverride); err != nil {
			return nil, err
		}
		a.log.Warn("advertised capabilities overridden", "file", opts.CapsOverride)
	}
	a.metrics.register(a)
	return a, nil
}

// overrideCaps replaces the fields of caps named in a JSON file.
func overrideCaps(caps *compat.HostCaps, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: --caps-override: %v", ErrOptions, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(caps); err != nil {
		return fmt.Errorf("%w: --caps-override %s: %v", ErrOptions, path, err)
	}
	return nil
}

// Run serves until ctx ends, then shuts down gracefully: it stops the
// control socket, stops the services, and leaves the cluster.
func (a *Agent) Run(ctx context.Context) (err error) {
	ln, err := listenControl(a.opts.Control)
	if err != nil {
		return err
	}
	defer ln.Close()

	cl, err := cluster.Start(cluster.Config{
		Name: a.opts.Name, Bind: a.bind, Advertise: a.adv,
		Secret: a.secret, Insecure: a.opts.Insecure,
		Profile: a.opts.Gossip, RefreshInterval: a.opts.Refresh,
		Meta: a.meta, Logger: a.log,
	})
	if err != nil {
		return err
	}
	a.cluster.Store(cl)
	defer func() {
		if lerr := cl.Leave(2 * time.Second); lerr != nil {
			a.log.Warn("leaving the cluster", "err", lerr)
		}
		a.log.Info("left the cluster")
	}()
	if len(a.opts.Join) > 0 {
		jctx, cancel := context.WithTimeout(ctx, a.opts.JoinTimeout)
		_, err := cl.Join(jctx, a.opts.Join)
		cancel()
		if err != nil {
			return err
		}
	}

	// Services: the QUIC transport (listening on a.QUICAddr(), peers
	// authenticated with a.Secret()) and the move machinery register
	// themselves here with RegisterService.
	servicesMu.Lock()
	svcs := append([]Service(nil), services...)
	servicesMu.Unlock()
	var stops []func(context.Context) error
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := len(stops) - 1; i >= 0; i-- {
			if serr := stops[i](sctx); serr != nil {
				a.log.Warn("stopping service", "service", svcs[i].Name, "err", serr)
			}
		}
	}()
	for _, s := range svcs {
		stop, err := s.Start(ctx, a)
		if err != nil {
			return fmt.Errorf("start %s: %w", s.Name, err)
		}
		if stop == nil {
			stop = func(context.Context) error { return nil }
		}
		stops = append(stops, stop)
		a.log.Info("service started", "service", s.Name)
	}

	srv := &http.Server{Handler: a.controlHandler(), ConnContext: connContext, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- fmt.Errorf("control socket: %w", srv.Serve(ln)) }()
	defer shutdownServer(srv)

	if a.opts.Metrics != "" {
		mln, err := net.Listen("tcp", a.opts.Metrics)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		msrv := &http.Server{Handler: a.metrics.handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- fmt.Errorf("metrics: %w", msrv.Serve(mln)) }()
		defer shutdownServer(msrv)
		a.log.Info("metrics", "addr", mln.Addr().String())
	}

	a.log.Info("agent ready", "gossip", cl.LocalAddr().String(), "quic", a.quic.String(),
		"control", a.opts.Control, "arch", a.caps.Arch.String(), "insecure", a.opts.Insecure)
	close(a.ready)
	select {
	case <-ctx.Done():
		a.log.Info("shutting down", "cause", context.Cause(ctx))
		return nil
	case err := <-errc:
		return err
	}
}

func shutdownServer(s *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.Shutdown(ctx)
}

// ErrAgentRunning: another agent serves the control socket.
var ErrAgentRunning = errors.New("another agent is serving the control socket")

// listenControl creates the control socket, replacing a stale one but
// never one an agent still serves.
func listenControl(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%w: %s", ErrAgentRunning, path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control socket: remove stale %s: %w", path, err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// Everyone may connect; each request is authorised by SO_PEERCRED.
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// meta is this node's cluster metadata, recomputed on every refresh.
func (a *Agent) meta() cluster.Meta {
	m := cluster.Meta{Caps: *a.caps, QUIC: a.quic, Tasks: uint32(a.ManagedTasks())}
	if err := cluster.ReadLoad(&m, runtime.NumCPU()); err != nil {
		a.log.Warn("reading load", "err", err)
	}
	return m
}

// Ready is closed once the agent serves its control socket.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Options the agent runs with.
func (a *Agent) Options() Options { return a.opts }

// Caps is this host's probed capabilities, with --caps-override applied:
// what the agent advertises. Callers must not modify it.
func (a *Agent) Caps() *compat.HostCaps { return a.caps }

// ProbeNotes says why absent features are absent.
func (a *Agent) ProbeNotes() compat.ProbeNotes { return a.notes }

// Cluster is the membership, nil before Run started it.
func (a *Agent) Cluster() *cluster.Cluster { return a.cluster.Load() }

// Members is every node this agent knows of (nil before Run).
func (a *Agent) Members() []cluster.Member {
	if c := a.cluster.Load(); c != nil {
		return c.Members()
	}
	return nil
}

// Secret is the cluster secret (nil when insecure), for the transport's
// peer authentication. Callers must not modify it.
func (a *Agent) Secret() []byte { return a.secret }

// QUICAddr is where the QUIC transport listens and what the agent advertises.
func (a *Agent) QUICAddr() netip.AddrPort { return a.quic }

// Logger is the agent's structured logger.
func (a *Agent) Logger() *slog.Logger { return a.log }

// SetTaskCounter installs the function that counts managed tasks (the move
// machinery owns that number); it is read at every metadata refresh.
func (a *Agent) SetTaskCounter(f func() int) {
	a.mu.Lock()
	a.taskCounter = f
	a.mu.Unlock()
}

// ManagedTasks is the number of tasks this agent manages.
func (a *Agent) ManagedTasks() int {
	a.mu.Lock()
	f := a.taskCounter
	a.mu.Unlock()
	if f == nil {
		return 0
	}
	return f()
}
