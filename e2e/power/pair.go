package power

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// File is a file to put into a guest's initramfs: Data, or the contents of
// HostPath when Data is nil.
type File struct {
	Data     []byte
	HostPath string
	// Mode is the permission bits; 0 means 0755.
	Mode fs.FileMode
}

// GuestConfig overrides the pair's settings for one guest.
type GuestConfig struct {
	Arch string // "" means PairConfig.Arch
	CPU  string // "" means PairConfig.CPU
	// Files are added to this guest's initramfs, after PairConfig.Files.
	Files map[string]File
	// Script is the boot script (/etc/e2e/script): lines "NAME ARGV...".
	Script string
	// Cmdline is appended to the kernel command line.
	Cmdline string
}

// PairConfig describes two guests joined by a network link.
type PairConfig struct {
	// Arch is ArchPPC64LE (Debian kernel) or ArchPPC64 (BE COMPAT kernel).
	Arch string
	// CPU is the QEMU -cpu model; default POWER9.
	CPU string
	// MemoryMiB per guest; default 1024.
	MemoryMiB int
	// Files are added to both guests' initramfs (guest path -> file).
	Files map[string]File
	// Guests holds per-guest overrides; guest 0 listens on the link.
	Guests [2]GuestConfig
	// WorkDir keeps initramfs images, sockets and console logs; default a
	// new directory under os.TempDir(), removed by a clean Close and kept
	// (for post-mortems) when the boot or the shutdown failed.
	WorkDir string
	// Guest1Delay is how long guest 1 starts after guest 0 listens. Each
	// kernel's CLOCK_MONOTONIC and CLOCK_BOOTTIME count from its own boot,
	// so a delay puts guest 0's clocks ahead of guest 1's by about that
	// much: a task moved from guest 1 to guest 0 then needs no time
	// namespace to keep its clocks from going back, and one moved the
	// other way needs one.
	Guest1Delay time.Duration
	// BootTimeout bounds the boot of both guests up to the control
	// channel's first answer; default 4 minutes.
	BootTimeout time.Duration
	// Logf, when set, receives progress lines (for example t.Logf).
	Logf func(format string, args ...any)
}

// Pair is two booted guests. Close it.
type Pair struct {
	Guests  [2]*Guest
	WorkDir string
	// BootTime is how long the boot took, from the first QEMU start to both
	// control channels answering.
	BootTime time.Duration

	netns  *netnsThread
	logf   func(string, ...any)
	closed bool
	// ownWork: BootPair made WorkDir, so a clean Close removes it.
	ownWork bool
}

// linkPort is the QEMU stream port, on 127.0.0.1 inside the pair's own
// network namespace (so any port is free).
const linkPort = 5555

// BootPair builds the initramfs images, starts guest 0 (listening on the
// link), waits for its LISTEN socket, starts guest 1, and waits until both
// answer on their control channel. On error nothing is left running.
func BootPair(ctx context.Context, cfg PairConfig) (*Pair, error) {
	if cfg.CPU == "" {
		cfg.CPU = "POWER9"
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = 1024
	}
	if cfg.BootTimeout == 0 {
		cfg.BootTimeout = 4 * time.Minute
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if _, err := exec.LookPath("qemu-system-ppc64"); err != nil {
		return nil, fmt.Errorf("power: qemu-system-ppc64 not installed (run e2e/power/deps.sh): %w", err)
	}
	work := cfg.WorkDir
	if work == "" {
		d, err := os.MkdirTemp("", "migrated-power-")
		if err != nil {
			return nil, fmt.Errorf("power: %w", err)
		}
		work = d
	}
	p := &Pair{WorkDir: work, logf: logf, ownWork: cfg.WorkDir == ""}

	// Build /init once per architecture, and the images.
	var qemuArgs [2][]string
	inits := map[string]string{}
	for i := range 2 {
		gc := cfg.Guests[i]
		arch := firstNonEmpty(gc.Arch, cfg.Arch)
		cpu := firstNonEmpty(gc.CPU, cfg.CPU)
		kern, err := EnsureKernel(ctx, arch)
		if err != nil {
			return nil, err
		}
		logf("g%d: %s kernel %s (%s)", i, arch, kern.Vmlinux, kern.Source)
		if inits[arch] == "" {
			out := filepath.Join(work, "init-"+arch)
			begin := time.Now()
			if err := BuildGo(ctx, arch, "./e2e/power/guestinit", out); err != nil {
				return nil, fmt.Errorf("power: build /init: %w", err)
			}
			logf("built /init for %s in %v", arch, time.Since(begin).Round(time.Millisecond))
			inits[arch] = out
		}
		name := fmt.Sprintf("g%d", i)
		addr := netip.AddrFrom4([4]byte{10, 0, 2, byte(i + 1)})
		img := filepath.Join(work, name+".cpio")
		begin := time.Now()
		size, err := writeInitramfs(img, inits[arch], kern, cfg.Files, gc.Files, gc.Script)
		if err != nil {
			return nil, err
		}
		logf("%s: initramfs %s, %d MiB, in %v", name, img, size>>20, time.Since(begin).Round(time.Millisecond))
		g := &Guest{Name: name, Arch: arch, CPU: cpu, Addr: addr, pending: map[uint64]*pendingReq{},
			exited: make(chan struct{})}
		g.console.grow = make(chan struct{})
		p.Guests[i] = g
		cmdline := fmt.Sprintf("console=hvc0 panic=1 e2e.name=%s e2e.ip=%s/24 %s", name, addr, gc.Cmdline)
		qemuArgs[i] = []string{
			"-M", "pseries,x-vof=on", "-cpu", cpu, "-smp", "1", "-m", strconv.Itoa(cfg.MemoryMiB),
			"-nographic", "-vga", "none", "-nodefaults", "-no-reboot",
			"-chardev", "stdio,id=con,signal=off", "-device", "spapr-vty,chardev=con",
			"-chardev", "socket,id=ctl,path=" + filepath.Join(work, name+".ctl") + ",server=on,wait=off",
			"-device", "spapr-vty,chardev=ctl",
			"-netdev", fmt.Sprintf("stream,id=link,server=%s,addr.type=inet,addr.host=127.0.0.1,addr.port=%d",
				map[bool]string{true: "on", false: "off"}[i == 0], linkPort),
			"-device", fmt.Sprintf("virtio-net-pci,romfile=,netdev=link,mac=52:54:00:00:02:%02x", i+1),
			"-kernel", kern.Vmlinux, "-initrd", img, "-append", strings.TrimSpace(cmdline),
		}
	}

	bootCtx, cancel := context.WithTimeout(ctx, cfg.BootTimeout)
	defer cancel()
	begin := time.Now()
	ok := false
	defer func() {
		if !ok {
			p.ownWork = false // keep the consoles of a failed boot
			p.Close()
			p.logf("boot failed; work directory kept: %s", work)
		}
	}()
	ns, err := newNetnsThread()
	if err != nil {
		return nil, err
	}
	p.netns = ns
	for i, g := range p.Guests {
		if err := p.startQEMU(g, qemuArgs[i]); err != nil {
			return nil, err
		}
		if i == 0 {
			if err := waitListen(bootCtx, g, linkPort); err != nil {
				return nil, err
			}
			if cfg.Guest1Delay > 0 {
				select {
				case <-time.After(cfg.Guest1Delay):
				case <-bootCtx.Done():
					return nil, fmt.Errorf("power: boot: %w", bootCtx.Err())
				}
			}
		}
	}
	for _, g := range p.Guests {
		if err := g.connect(bootCtx, filepath.Join(work, g.Name+".ctl")); err != nil {
			return nil, err
		}
	}
	for _, g := range p.Guests {
		hello, err := g.hello(bootCtx)
		if err != nil {
			return nil, err
		}
		logf("%s up after %v: %s (%s, -cpu %s)", g.Name, time.Since(begin).Round(time.Millisecond), hello, g.Arch, g.CPU)
	}
	p.BootTime = time.Since(begin)
	ok = true
	return p, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func writeInitramfs(path, initBin string, kern *Kernel, common, own map[string]File, script string) (int64, error) {
	r := NewInitramfs()
	init, err := os.ReadFile(initBin)
	if err != nil {
		return 0, fmt.Errorf("power: %w", err)
	}
	steps := []error{
		r.AddFile("init", 0o755, init),
		r.AddCharDev("dev/console", 0o600, 5, 1),
		r.AddCharDev("dev/null", 0o666, 1, 3),
		r.AddDir("proc", 0o755), r.AddDir("sys", 0o755), r.AddDir("run", 0o755),
		r.AddDir("tmp", 0o1777), r.AddDir("bin", 0o755), r.AddDir("etc/e2e", 0o755),
	}
	var names []string
	for _, m := range kern.Modules {
		b, err := os.ReadFile(m)
		if err != nil {
			return 0, fmt.Errorf("power: %w", err)
		}
		name := strings.TrimSuffix(filepath.Base(m), ".ko")
		names = append(names, name)
		steps = append(steps, r.AddFile("lib/modules/"+name+".ko", 0o644, b))
	}
	if len(names) > 0 {
		steps = append(steps, r.AddFile("etc/e2e/modules", 0o644, []byte(strings.Join(names, "\n")+"\n")))
	}
	if script != "" {
		steps = append(steps, r.AddFile("etc/e2e/script", 0o644, []byte(script)))
	}
	if err := errors.Join(steps...); err != nil {
		return 0, err
	}
	for _, files := range []map[string]File{common, own} {
		for name, f := range files {
			data := f.Data
			if data == nil {
				if data, err = os.ReadFile(f.HostPath); err != nil {
					return 0, fmt.Errorf("power: initramfs file %s: %w", name, err)
				}
			}
			mode := f.Mode
			if mode == 0 {
				mode = 0o755
			}
			if err := r.AddFile(name, mode, data); err != nil {
				return 0, err
			}
		}
	}
	out, err := os.Create(path)
	if err != nil {
		return 0, fmt.Errorf("power: %w", err)
	}
	n, err := r.WriteTo(out)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// startQEMU starts the guest's QEMU inside the pair's network namespace.
func (p *Pair) startQEMU(g *Guest, args []string) error {
	logPath := filepath.Join(p.WorkDir, g.Name+".console")
	f, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("power: %w", err)
	}
	g.console.file = f
	cmd := exec.Command("qemu-system-ppc64", args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = &g.console
	// QEMU reads its stdio console; give it a pipe that stays open and empty.
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdin = stdinR
	// Pdeathsig fires when the thread that started QEMU exits: that is the
	// namespace thread, which lives until Close (or until this process dies).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.netns.start(cmd); err != nil {
		stdinR.Close()
		stdinW.Close()
		return fmt.Errorf("power: start QEMU for %s: %w", g.Name, err)
	}
	stdinR.Close()
	g.cmd = cmd
	p.logf("%s: QEMU pid %d, console in %s", g.Name, cmd.Process.Pid, logPath)
	go func() {
		r := bufio.NewReaderSize(stdout, 64<<10)
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				g.console.Write(buf[:n])
			}
			if err != nil {
				break
			}
		}
		g.exitErr = cmd.Wait()
		stdinW.Close()
		g.console.mu.Lock()
		g.console.file.Close()
		g.console.file = nil
		g.console.mu.Unlock()
		close(g.exited)
	}()
	return nil
}

// waitListen waits until QEMU listens on 127.0.0.1:port in its namespace
// (a probe connection would be taken as the peer, so it reads /proc/net/tcp).
func waitListen(ctx context.Context, g *Guest, port int) error {
	want := fmt.Sprintf("0100007F:%04X", port)
	path := fmt.Sprintf("/proc/%d/net/tcp", g.cmd.Process.Pid)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				f := strings.Fields(line)
				if len(f) > 3 && f[1] == want && f[3] == "0A" {
					return nil
				}
			}
		}
		select {
		case <-g.exited:
			return fmt.Errorf("%w before listening on the link:\n%s", ErrGuestExited, g.consoleTail())
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for LISTEN on 127.0.0.1:%d: %w", g.Name, port, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Guest returns guest i (0 or 1).
func (p *Pair) Guest(i int) *Guest { return p.Guests[i] }

// Run runs argv in guest i and returns its combined output; see Guest.Run.
func (p *Pair) Run(ctx context.Context, i int, argv ...string) ([]byte, error) {
	return p.Guests[i].Run(ctx, argv...)
}

// Close powers both guests off (killing QEMU after a grace period) and
// releases the network namespace. It is safe to call more than once.
func (p *Pair) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	var killed []string
	done := make(chan string, 2)
	n := 0
	for _, g := range p.Guests {
		if g == nil || g.cmd == nil {
			continue
		}
		n++
		go func(g *Guest) {
			if g.shutdown(20 * time.Second) {
				done <- g.Name
				return
			}
			done <- ""
		}(g)
	}
	for range n {
		if name := <-done; name != "" {
			killed = append(killed, name)
		}
	}
	if p.netns != nil {
		p.netns.stop()
	}
	if len(killed) > 0 {
		return fmt.Errorf("power: QEMU of %s did not power off in time and was killed (work directory kept: %s)",
			strings.Join(killed, ", "), p.WorkDir)
	}
	if p.ownWork {
		os.RemoveAll(p.WorkDir)
	}
	return nil
}

// netnsThread is an OS thread that lives in a new network namespace with lo
// up. QEMUs are started from it, so they share the namespace: their link
// socket on 127.0.0.1 is invisible to the host and to other pairs. The
// thread is never returned to the Go scheduler: when stop ends its goroutine
// while it is still locked, the runtime destroys the thread.
type netnsThread struct {
	reqs chan nsStart
	quit chan struct{}
	done chan struct{}
}

type nsStart struct {
	cmd *exec.Cmd
	err chan error
}

func newNetnsThread() (*netnsThread, error) {
	t := &netnsThread{reqs: make(chan nsStart), quit: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		defer close(t.done)
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ready <- fmt.Errorf("power: unshare network namespace (needs root): %w", err)
			return
		}
		if err := loUp(); err != nil {
			ready <- err
			return
		}
		ready <- nil
		for {
			select {
			case r := <-t.reqs:
				r.err <- r.cmd.Start()
			case <-t.quit:
				return
			}
		}
	}()
	if err := <-ready; err != nil {
		<-t.done
		return nil, err
	}
	return t, nil
}

func (t *netnsThread) start(cmd *exec.Cmd) error {
	r := nsStart{cmd: cmd, err: make(chan error, 1)}
	select {
	case t.reqs <- r:
		return <-r.err
	case <-t.done:
		return errors.New("power: network namespace thread is gone")
	}
}

func (t *netnsThread) stop() {
	close(t.quit)
	<-t.done
}

func loUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("power: socket in the namespace: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("power: lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("power: lo up: %w", err)
	}
	return nil
}
