package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultPort is the gossip port when an address has none (memberlist's).
const DefaultPort = 7946

// Profile names a set of memberlist timings.
const (
	// ProfileLAN is memberlist's DefaultLANConfig: a failed node is
	// declared dead after roughly 5-25 s.
	ProfileLAN = "lan"
	// ProfileLocal is DefaultLocalConfig with suspicion that does not
	// stretch when few peers can confirm it: a failed node is declared
	// dead after about 3-5 s. For one machine or a quiet LAN.
	ProfileLocal = "local"
)

// Config of a Cluster.
type Config struct {
	// Name of this node, unique in the cluster.
	Name string
	// Bind is the gossip address (UDP and TCP). Port 0 picks one.
	Bind netip.AddrPort
	// Advertise, if valid, is the address peers use instead of Bind.
	Advertise netip.AddrPort
	// Secret (SecretSize bytes) encrypts and authenticates all gossip.
	// Nil only with Insecure.
	Secret   []byte
	Insecure bool
	// Profile is ProfileLAN (default) or ProfileLocal.
	Profile string
	// Meta returns this node's metadata; called at start and on every
	// refresh. Required.
	Meta func() Meta
	// RefreshInterval between metadata refreshes (UpdateNode); default 5 s.
	RefreshInterval time.Duration
	Logger          *slog.Logger
}

// State of a member as this node sees it.
type State string

const (
	StateAlive  State = "alive"
	StateLeft   State = "left"   // it said goodbye
	StateFailed State = "failed" // gossip declared it dead
)

// Member is one node this node knows of, alive or gone.
type Member struct {
	Name  string `json:"name"`
	Addr  string `json:"address"`
	State State  `json:"status"`
	Local bool   `json:"local,omitempty"`
	// Meta is nil when the node's metadata could not be decoded (MetaError says why).
	Meta      *Meta     `json:"meta,omitempty"`
	MetaError string    `json:"meta_error,omitempty"`
	Since     time.Time `json:"since"`
}

// EventKind is what happened to a member.
type EventKind string

const (
	EventJoin   EventKind = "join"
	EventLeave  EventKind = "leave" // left or failed: see Member.State
	EventUpdate EventKind = "update"
)

// Event is a membership change.
type Event struct {
	Kind   EventKind
	Member Member
}

// ErrJoin: no peer could be reached, or every peer refused this node (a
// wrong secret looks like this).
var ErrJoin = errors.New("cannot join the cluster")

// Cluster is this node's membership.
type Cluster struct {
	cfg  Config
	ml   *memberlist.Memberlist
	log  *slog.Logger
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	meta    []byte // last encoded local metadata, never over MaxMetaSize
	leaving bool
	members map[string]*Member
	subs    map[chan Event]struct{}

	leaveOnce sync.Once
}

// Start creates this node's memberlist and starts refreshing its metadata.
// It does not join anyone: call Join.
func Start(cfg Config) (*Cluster, error) {
	if cfg.Name == "" {
		return nil, errors.New("cluster: a node name is required")
	}
	if cfg.Meta == nil {
		return nil, errors.New("cluster: Config.Meta is required")
	}
	if !cfg.Insecure && len(cfg.Secret) != SecretSize {
		return nil, fmt.Errorf("cluster: %w: %d bytes, want %d (or run insecure)", ErrSecret, len(cfg.Secret), SecretSize)
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Cluster{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "cluster"),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		members: map[string]*Member{},
		subs:    map[chan Event]struct{}{},
	}
	if err := c.encodeMeta(); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}

	var mc *memberlist.Config
	switch cfg.Profile {
	case "", ProfileLAN:
		mc = memberlist.DefaultLANConfig()
	case ProfileLocal:
		mc = memberlist.DefaultLocalConfig()
		mc.SuspicionMaxTimeoutMult = 1
	default:
		return nil, fmt.Errorf("cluster: unknown gossip profile %q (lan, local)", cfg.Profile)
	}
	mc.Name = cfg.Name
	mc.BindAddr = cfg.Bind.Addr().String()
	mc.BindPort = int(cfg.Bind.Port())
	mc.AdvertisePort = int(cfg.Bind.Port())
	if cfg.Advertise.IsValid() {
		mc.AdvertiseAddr = cfg.Advertise.Addr().String()
		mc.AdvertisePort = int(cfg.Advertise.Port())
	}
	mc.Delegate = (*delegate)(c)
	mc.Events = (*delegate)(c)
	mc.Logger = log.New(memberlistLog{c.log}, "", 0)
	if !cfg.Insecure {
		kr, err := memberlist.NewKeyring(nil, cfg.Secret)
		if err != nil {
			return nil, fmt.Errorf("cluster: keyring: %w", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster: bind %v: %w", cfg.Bind, err)
	}
	c.ml = ml
	go c.refreshLoop()
	return c, nil
}

// LocalAddr is the gossip address this node listens on (with the port
// chosen when Bind's port was 0).
func (c *Cluster) LocalAddr() netip.AddrPort {
	n := c.ml.LocalNode()
	a, _ := netip.AddrFromSlice(n.Addr)
	return netip.AddrPortFrom(a.Unmap(), n.Port)
}

// Name of this node.
func (c *Cluster) Name() string { return c.cfg.Name }

// Join contacts peers ("IP[:PORT]") until one accepts this node or ctx ends.
func (c *Cluster) Join(ctx context.Context, peers []string) (int, error) {
	addrs := make([]string, len(peers))
	for i, p := range peers {
		a, err := ParseHostPort(p, DefaultPort)
		if err != nil {
			return 0, fmt.Errorf("%w: %v", ErrJoin, err)
		}
		addrs[i] = a.String()
	}
	for {
		n, err := c.ml.Join(addrs)
		if n > 0 {
			c.log.Info("joined", "peers", addrs, "reached", n, "members", c.ml.NumMembers())
			return n, nil
		}
		c.log.Debug("join attempt failed", "peers", addrs, "err", err)
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w via %v: %v (is the secret the same on every node?)", ErrJoin, addrs, err)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// Leave tells the cluster this node is going (so peers see it left, not
// failed), then stops gossip. Safe to call more than once.
func (c *Cluster) Leave(timeout time.Duration) error { return c.shutdown(true, timeout) }

// shutdown stops the refresh loop and gossip; graceful first marks the
// metadata "leaving" and gossips that, then sends memberlist's leave.
// memberlist does not tell a NotifyLeave receiver whether the node left or
// failed (it sets nodeState.State, not Node.State), so receivers use the
// leaving mark.
func (c *Cluster) shutdown(graceful bool, timeout time.Duration) error {
	var err error
	c.leaveOnce.Do(func() {
		close(c.stop)
		<-c.done
		if graceful {
			c.mu.Lock()
			c.leaving = true
			c.mu.Unlock()
			if e := c.encodeMeta(); e == nil {
				if e := c.ml.UpdateNode(timeout / 2); e != nil {
					c.log.Warn("leave: announcing", "err", e)
				}
				// UpdateNode returns once the mark is queued, not once
				// peers have it: give gossip a few rounds, so that the
				// leave that follows is read as "left", not "failed".
				time.Sleep(min(timeout/4, 500*time.Millisecond))
			}
			if e := c.ml.Leave(timeout / 2); e != nil {
				err = fmt.Errorf("cluster leave: %w", e)
			}
		}
		if e := c.ml.Shutdown(); e != nil && err == nil {
			err = fmt.Errorf("cluster shutdown: %w", e)
		}
		c.mu.Lock()
		for ch := range c.subs {
			close(ch)
			delete(c.subs, ch)
		}
		c.mu.Unlock()
	})
	return err
}

// Refresh recomputes this node's metadata and gossips it now if it changed.
func (c *Cluster) Refresh() error {
	c.mu.Lock()
	old := c.meta
	c.mu.Unlock()
	if err := c.encodeMeta(); err != nil {
		return err
	}
	c.mu.Lock()
	same := bytes.Equal(old, c.meta)
	c.mu.Unlock()
	if same {
		return nil
	}
	return c.ml.UpdateNode(2 * time.Second)
}

func (c *Cluster) refreshLoop() {
	defer close(c.done)
	t := time.NewTicker(c.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			if err := c.Refresh(); err != nil {
				c.log.Warn("metadata refresh", "err", err)
			}
		}
	}
}

// encodeMeta encodes Config.Meta(); on error the previous metadata stays.
func (c *Cluster) encodeMeta() error {
	m := c.cfg.Meta()
	c.mu.Lock()
	m.Leaving = c.leaving
	c.mu.Unlock()
	b, err := m.Encode()
	if err != nil {
		return fmt.Errorf("local metadata: %w", err)
	}
	c.mu.Lock()
	c.meta = b
	c.mu.Unlock()
	return nil
}

// Members returns every node this node has seen, sorted by name: alive
// ones, and those that left or failed since this agent started.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	out := make([]Member, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, *m)
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Subscribe returns a channel of membership events. Events are dropped
// for a subscriber that does not keep up (Members stays the truth); the
// channel is closed by cancel or when the cluster stops.
func (c *Cluster) Subscribe(buffer int) (<-chan Event, func()) {
	ch := make(chan Event, buffer)
	c.mu.Lock()
	c.subs[ch] = struct{}{}
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		if _, ok := c.subs[ch]; ok {
			delete(c.subs, ch)
			close(ch)
		}
		c.mu.Unlock()
	}
}

// record applies an event from memberlist. It runs with memberlist's lock
// held: it must not call back into memberlist.
func (c *Cluster) record(kind EventKind, n *memberlist.Node) {
	m := Member{
		Name:  n.Name,
		Addr:  net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
		State: StateAlive,
		Local: n.Name == c.cfg.Name,
		Since: time.Now(),
	}
	meta, err := DecodeMeta(n.Meta)
	if err != nil {
		m.MetaError = err.Error()
	} else {
		m.Meta = meta
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if kind == EventLeave {
		m.State = StateFailed
		if old, ok := c.members[n.Name]; ok && old.Meta != nil && old.Meta.Leaving || m.Meta != nil && m.Meta.Leaving {
			m.State = StateLeft
		}
	}
	if old, ok := c.members[n.Name]; ok && old.State == m.State {
		m.Since = old.Since
	}
	c.members[n.Name] = &m
	for ch := range c.subs {
		select {
		case ch <- Event{Kind: kind, Member: m}:
		default:
		}
	}
}

// delegate is the Cluster seen by memberlist (Delegate and EventDelegate).
type delegate Cluster

func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit { // cannot happen: Encode enforces MaxMetaSize
		return nil
	}
	return bytes.Clone(d.meta)
}

func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

func (d *delegate) NotifyJoin(n *memberlist.Node)   { (*Cluster)(d).record(EventJoin, n) }
func (d *delegate) NotifyLeave(n *memberlist.Node)  { (*Cluster)(d).record(EventLeave, n) }
func (d *delegate) NotifyUpdate(n *memberlist.Node) { (*Cluster)(d).record(EventUpdate, n) }

// ParseHostPort parses "IP" or "IP:PORT" (IPv6 in brackets with a port).
func ParseHostPort(s string, defaultPort uint16) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: want IP or IP:PORT", s)
	}
	return netip.AddrPortFrom(a, defaultPort), nil
}

// memberlistLog turns memberlist's "[LEVEL] memberlist: msg" lines into slog records.
type memberlistLog struct{ log *slog.Logger }

func (w memberlistLog) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError} {
		if rest, ok := bytes.CutPrefix([]byte(line), []byte(prefix)); ok {
			level, line = l, string(bytes.TrimSpace(rest))
			break
		}
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}
