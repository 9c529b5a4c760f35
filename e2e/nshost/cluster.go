package nshost

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MaxHosts is the largest cluster New builds: hosts are named "a" to "h".
const MaxHosts = 8

// nsPrefix starts the name of every network namespace this package creates:
// nshost-<pid of the harness>-<random>-<host>. New deletes those that no
// process uses any more (left by a run that crashed).
const nsPrefix = "nshost-"

// sockDirPrefix starts the name of the directory, in os.TempDir(), of a
// cluster's control sockets (kept short: a socket path has 108 bytes).
const sockDirPrefix = "nsh-"

// netnsDir is where ip(8) keeps named network namespaces.
const netnsDir = "/run/netns"

// Config says what cluster to build.
type Config struct {
	// Hosts is the number of hosts, 2 to MaxHosts.
	Hosts int
	// Dir holds one work directory per host (its TMPDIR, the init's log,
	// daemon logs). Empty: a new temporary directory, removed by Close.
	Dir string
	// StartTimeout bounds the start of each host init. Zero means 10 s.
	StartTimeout time.Duration
}

// Cluster is a set of hosts on this machine joined by a mesh of veth links.
type Cluster struct {
	Hosts []*Host

	run     string // unique part of the namespace names
	pidSpan int    // PIDs between the first PIDs of two hosts
	// hostsFile is the /etc/hosts of every host: the hosts by name.
	hostsFile string
	dir       string
	ownDir    bool
	sockDir   string

	closeOnce sync.Once
	closeErr  error
}

// Host is one host of a Cluster.
type Host struct {
	Name  string     // "a", "b", ...; also the host's UTS host name
	Addr  netip.Addr // its address, 198.18.0.1 for "a", 198.18.0.2 for "b", ...
	NetNS string     // the name of its network namespace (ip -n NetNS ...)

	cluster  *Cluster
	dir      string
	sock     string
	firstPID int
	init     *exec.Cmd
	initPID  int // in the harness's PID namespace
	pidNS    uint64
	lifeline *os.File

	mu   sync.Mutex
	dead bool
}

// New builds a cluster: it removes stale namespaces of crashed runs, starts
// one init per host and wires the links. On error nothing is left behind.
func New(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Hosts < 2 || cfg.Hosts > MaxHosts {
		return nil, fmt.Errorf("nshost: %d hosts: want 2 to %d", cfg.Hosts, MaxHosts)
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("nshost: the ip command (iproute2) is needed: %w", err)
	}
	if err := RemoveStale(ctx); err != nil {
		return nil, err
	}
	pidMax, err := readInt("/proc/sys/kernel/pid_max")
	if err != nil {
		return nil, fmt.Errorf("nshost: %w", err)
	}
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("nshost: random: %w", err)
	}
	c := &Cluster{
		run:     fmt.Sprintf("%d-%s", os.Getpid(), hex.EncodeToString(rnd[:])),
		dir:     cfg.Dir,
		pidSpan: pidMax / (MaxHosts + 1),
	}
	if c.dir == "" {
		if c.dir, err = os.MkdirTemp("", "nshost-"); err != nil {
			return nil, fmt.Errorf("nshost: work directory: %w", err)
		}
		c.ownDir = true
	}
	// Socket paths must stay under 108 bytes, whatever Dir is.
	if c.sockDir, err = os.MkdirTemp("", sockDirPrefix); err != nil {
		c.Close()
		return nil, fmt.Errorf("nshost: socket directory: %w", err)
	}
	c.hostsFile = filepath.Join(c.dir, "hosts")
	if err := os.WriteFile(c.hostsFile, hostsFile(cfg.Hosts), 0o644); err != nil {
		c.Close()
		return nil, fmt.Errorf("nshost: %w", err)
	}
	// The inits start side by side: each takes tens of milliseconds.
	c.Hosts = make([]*Host, cfg.Hosts)
	errs := make([]error, cfg.Hosts)
	var wg sync.WaitGroup
	for i := range cfg.Hosts {
		wg.Go(func() { c.Hosts[i], errs[i] = c.startHost(ctx, i, cfg.StartTimeout) })
	}
	wg.Wait()
	c.Hosts = slices.DeleteFunc(c.Hosts, func(h *Host) bool { return h == nil })
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.wire(ctx); err != nil {
		c.Close()
		return nil, err
	}
	for _, h := range c.Hosts {
		if err := h.waitLinks(ctx, cfg.StartTimeout); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// Host returns the host called name, or nil.
func (c *Cluster) Host(name string) *Host {
	for _, h := range c.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// String describes the cluster, one line per host, for logs and the demo.
func (c *Cluster) String() string {
	var b strings.Builder
	for _, h := range c.Hosts {
		fmt.Fprintf(&b, "host %s: %s, netns %s, init pid %d, pids from %d, dir %s\n",
			h.Name, h.Addr, h.NetNS, h.initPID, h.firstPID, h.dir)
	}
	return b.String()
}

// Dir is the cluster's work directory.
func (c *Cluster) Dir() string { return c.dir }

// hostsFile is the /etc/hosts the hosts share, so that they can name each
// other: "b" is 198.18.0.2 everywhere.
func hostsFile(n int) []byte {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost\n")
	for i := range n {
		fmt.Fprintf(&b, "%s\t%s\n", hostAddr(i), hostName(i))
	}
	return []byte(b.String())
}

func hostName(i int) string { return string(rune('a' + i)) }

func hostAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)}) }

// linkIndex is the interface index, inside host i, of its link to host j.
func linkIndex(i, j int) int { return 10 + i*MaxHosts + j }

// linkName is the name, inside host from, of its link to host to.
func linkName(to *Host) string { return "to-" + to.Name }

func (c *Cluster) startHost(ctx context.Context, i int, timeout time.Duration) (*Host, error) {
	name := hostName(i)
	h := &Host{
		Name:     name,
		Addr:     hostAddr(i),
		NetNS:    nsPrefix + c.run + "-" + name,
		cluster:  c,
		dir:      filepath.Join(c.dir, name),
		sock:     filepath.Join(c.sockDir, name),
		firstPID: (i + 1) * c.pidSpan, // below: the inits' first threads
	}
	if err := os.MkdirAll(filepath.Join(h.dir, "tmp"), 0o755); err != nil {
		return nil, fmt.Errorf("nshost: host %s: %w", name, err)
	}
	logf, err := os.OpenFile(filepath.Join(h.dir, "init.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("nshost: host %s: %w", name, err)
	}
	defer logf.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("nshost: host %s: %w", name, err)
	}
	defer readyR.Close()
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return nil, fmt.Errorf("nshost: host %s: %w", name, err)
	}
	cfg, _ := json.Marshal(initConfig{Name: name, Socket: h.sock, FirstPID: h.firstPID, Hosts: c.hostsFile})
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"nshost-init-" + name}
	cmd.Env = append(os.Environ(), initEnv+"="+string(cfg))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{readyW, lifeR} // fds 3 and 4: initReadyFD, initLifelineFD
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWNET |
			syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
	}
	err = cmd.Start()
	readyW.Close()
	lifeR.Close()
	if err != nil {
		lifeW.Close()
		return nil, fmt.Errorf("nshost: start init of host %s: %w", name, err)
	}
	h.init, h.initPID, h.lifeline = cmd, cmd.Process.Pid, lifeW

	fail := func(err error) (*Host, error) {
		h.stop()
		return nil, fmt.Errorf("nshost: host %s: %w (log: %s)", name, err, filepath.Join(h.dir, "init.log"))
	}
	readyR.SetReadDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(readyR).ReadString('\n')
	switch {
	case err != nil:
		return fail(fmt.Errorf("init did not report ready: %w", err))
	case line != "ready\n":
		return fail(fmt.Errorf("init: %s", strings.TrimSpace(strings.TrimPrefix(line, "error: "))))
	}
	if h.pidNS, err = nsInode(h.initPID, "pid"); err != nil {
		return fail(fmt.Errorf("pid namespace of init: %w", err))
	}
	if err := runIP(ctx, "", "netns", "attach", h.NetNS, fmt.Sprint(h.initPID)); err != nil {
		return fail(err)
	}
	return h, nil
}

// wire creates one veth pair per couple of hosts, directly in the hosts'
// namespaces, and gives each end the host's address with the peer's address
// as the other side of a point-to-point link.
func (c *Cluster) wire(ctx context.Context) error {
	// Each end gets its own interface index: the kernel activates a veth
	// at once only when its index differs from its peer's (otherwise
	// linkwatch delays it by a second), and in fresh namespaces both ends
	// would otherwise be index 2.
	var links strings.Builder
	for i, a := range c.Hosts {
		for j, b := range c.Hosts[i+1:] {
			j += i + 1
			fmt.Fprintf(&links, "link add name %s index %d netns %s type veth peer name %s index %d netns %s\n",
				linkName(b), linkIndex(i, j), a.NetNS, linkName(a), linkIndex(j, i), b.NetNS)
		}
	}
	if err := runIP(ctx, links.String(), "-batch", "-"); err != nil {
		return fmt.Errorf("nshost: create links: %w", err)
	}
	for _, a := range c.Hosts {
		var cmds strings.Builder
		cmds.WriteString("link set lo up\n")
		for _, b := range c.Hosts {
			if a == b {
				continue
			}
			// No IPv6 link-local address: the links carry only what the
			// hosts' programs send, so their counters measure it.
			fmt.Fprintf(&cmds, "link set %s addrgenmode none\n", linkName(b))
			fmt.Fprintf(&cmds, "addr add %s/32 peer %s/32 dev %s\n", a.Addr, b.Addr, linkName(b))
			fmt.Fprintf(&cmds, "link set %s up\n", linkName(b))
		}
		if err := runIP(ctx, cmds.String(), "-n", a.NetNS, "-batch", "-"); err != nil {
			return fmt.Errorf("nshost: configure host %s: %w", a.Name, err)
		}
	}
	return nil
}

// waitLinks waits until every link of h is operationally up: the kernel
// brings a veth up a little after it is told to.
func (h *Host) waitLinks(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		out, err := exec.CommandContext(ctx, "ip", "-n", h.NetNS, "-o", "link", "show", "up").Output()
		if err == nil && linksUp(string(out), len(h.cluster.Hosts)-1) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nshost: links of host %s not up: %w (last: %v, %q)", h.Name, ctx.Err(), err, out)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// linksUp reports whether "ip -o link show" lists at least n veth links
// ("to-...") in state UP.
func linksUp(out string, n int) bool {
	up := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, ": to-") && strings.Contains(line, " state UP ") {
			up++
		}
	}
	return up >= n
}

// LinkDown takes the link between a and b down at both ends: packets between
// them fail to send (ENETUNREACH), the other links stay up.
func (c *Cluster) LinkDown(a, b *Host) error { return c.setLink(a, b, "down") }

// LinkUp brings the link between a and b back; the routes come back with it.
func (c *Cluster) LinkUp(a, b *Host) error { return c.setLink(a, b, "up") }

func (c *Cluster) setLink(a, b *Host, state string) error {
	if a == b || a == nil || b == nil {
		return errors.New("nshost: a link joins two different hosts")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, e := range [][2]*Host{{a, b}, {b, a}} {
		if err := runIP(ctx, "", "-n", e[0].NetNS, "link", "set", linkName(e[1]), state); err != nil {
			return fmt.Errorf("nshost: link %s-%s %s: %w", a.Name, b.Name, state, err)
		}
	}
	return nil
}

// LinkStats is what went through one end of a link.
type LinkStats struct {
	TxBytes, TxPackets uint64
	RxBytes, RxPackets uint64
}

// Link returns the counters of from's end of its link to to: TxBytes is what
// from sent to to, Ethernet headers included (ARP too; no IPv6: the links
// have no link-local address).
func (c *Cluster) Link(from, to *Host) (LinkStats, error) {
	if from == to || from == nil || to == nil {
		return LinkStats{}, errors.New("nshost: a link joins two different hosts")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "-n", from.NetNS, "-j", "-s", "link", "show", "dev", linkName(to)).Output()
	if err != nil {
		return LinkStats{}, fmt.Errorf("nshost: counters of link %s-%s: %w", from.Name, to.Name, err)
	}
	st, err := parseLinkStats(out)
	if err != nil {
		return LinkStats{}, fmt.Errorf("nshost: counters of link %s-%s: %w", from.Name, to.Name, err)
	}
	return st, nil
}

// parseLinkStats decodes the output of "ip -j -s link show dev X".
func parseLinkStats(b []byte) (LinkStats, error) {
	var links []struct {
		Stats *struct {
			Rx struct{ Bytes, Packets uint64 } `json:"rx"`
			Tx struct{ Bytes, Packets uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(b, &links); err != nil {
		return LinkStats{}, fmt.Errorf("%w: ip -j: %v", errBadMessage, err)
	}
	if len(links) != 1 || links[0].Stats == nil {
		return LinkStats{}, fmt.Errorf("%w: ip -j: want one link with stats64", errBadMessage)
	}
	s := links[0].Stats
	return LinkStats{TxBytes: s.Tx.Bytes, TxPackets: s.Tx.Packets, RxBytes: s.Rx.Bytes, RxPackets: s.Rx.Packets}, nil
}

// blackholeMAC is the neighbour address Partition gives each end for the
// other: a locally administered unicast address no veth here has.
const blackholeMAC = "02:00:00:00:de:ad"

// Partition makes the link between a and b drop every packet, silently and
// in both directions, while both ends stay up: as a failed switch would.
// Senders see no error; connections time out. (This machine's kernel has no
// netem and no iptables: each end's neighbour entry for the other is pinned
// to an address nobody has, so the receiving veth discards every frame as
// addressed to another host.)
func (c *Cluster) Partition(a, b *Host) error {
	return c.neigh(a, b, "replace", "lladdr", blackholeMAC, "nud", "permanent")
}

// Heal undoes Partition: the ends resolve each other again with ARP.
func (c *Cluster) Heal(a, b *Host) error { return c.neigh(a, b, "del") }

func (c *Cluster) neigh(a, b *Host, op string, args ...string) error {
	if a == b || a == nil || b == nil {
		return errors.New("nshost: a link joins two different hosts")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, e := range [][2]*Host{{a, b}, {b, a}} {
		argv := append([]string{"-n", e[0].NetNS, "neigh", op, e[1].Addr.String()}, args...)
		argv = append(argv, "dev", linkName(e[1]))
		err := runIP(ctx, "", argv...)
		if err != nil && op == "del" && strings.Contains(err.Error(), "No such file") {
			err = nil // nothing resolved yet
		}
		if err != nil {
			return fmt.Errorf("nshost: neighbour %s on %s: %w", e[1].Name, e[0].Name, err)
		}
	}
	return nil
}

// Close kills every host (and so every process in them), deletes the
// network namespaces and their links, and removes what New created. It may
// be called more than once and after a failed New.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		var errs []error
		for _, h := range c.Hosts {
			errs = append(errs, h.stop())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for _, h := range c.Hosts {
			errs = append(errs, deleteNetns(ctx, h.NetNS))
		}
		if c.sockDir != "" {
			errs = append(errs, os.RemoveAll(c.sockDir))
		}
		if c.ownDir {
			errs = append(errs, os.RemoveAll(c.dir))
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// stop kills the host's init, which takes every process of the host with it,
// and waits for it.
func (h *Host) stop() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.init == nil {
		return nil
	}
	h.dead = true
	h.init.Process.Kill()
	h.lifeline.Close()
	done := make(chan error, 1)
	go func() { done <- h.init.Wait() }()
	var err error
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		err = fmt.Errorf("nshost: init of host %s (pid %d) still running 10s after SIGKILL", h.Name, h.initPID)
	}
	h.init = nil
	return err
}

func deleteNetns(ctx context.Context, name string) error {
	if _, err := os.Lstat(filepath.Join(netnsDir, name)); errors.Is(err, os.ErrNotExist) {
		return nil // already gone, maybe removed by another run's RemoveStale
	}
	if err := runIP(ctx, "", "netns", "delete", name); err != nil {
		if _, serr := os.Lstat(filepath.Join(netnsDir, name)); errors.Is(serr, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return nil
}

// RemoveStale deletes the network namespaces named by this package that no
// process is in any more: those of runs that crashed before Close. A live
// cluster always has its init in each of its namespaces, so parallel runs are
// safe from each other.
func RemoveStale(ctx context.Context) error {
	removeStaleSockDirs(os.TempDir(), time.Minute)
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("nshost: list %s: %w", netnsDir, err)
	}
	var candidates []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), nsPrefix) {
			candidates = append(candidates, e.Name())
		}
	}
	if len(candidates) == 0 {
		return nil
	}
	pids, err := allPIDs("/proc")
	if err != nil {
		return err
	}
	inUse := make(map[uint64]bool)
	for _, pid := range pids {
		if ino, err := nsInode(pid, "net"); err == nil {
			inUse[ino] = true
		}
	}
	var errs []error
	for _, name := range candidates {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(netnsDir, name), &st); err == nil && inUse[st.Ino] {
			continue
		}
		errs = append(errs, deleteNetns(ctx, name))
	}
	return errors.Join(errs...)
}

// runIP runs ip(8) in the harness's namespaces, stdin feeding -batch.
func runIP(ctx context.Context, stdin string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// removeStaleSockDirs removes the socket directories of crashed runs: those
// older than minAge in which no socket accepts a connection. (A directory
// younger than minAge may belong to a cluster still starting its inits.)
func removeStaleSockDirs(tmp string, minAge time.Duration) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, sockDirPrefix+"*"))
	for _, d := range dirs {
		st, err := os.Lstat(d)
		if err != nil || !st.IsDir() || time.Since(st.ModTime()) < minAge {
			continue
		}
		socks, _ := os.ReadDir(d)
		live := false
		for _, s := range socks {
			if probeSocket(filepath.Join(d, s.Name())) == nil {
				live = true
				break
			}
		}
		if !live {
			os.RemoveAll(d)
		}
	}
}
