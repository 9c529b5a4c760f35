package precopy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Throttle takes CPU time away from a task (auto-converge).
type Throttle interface {
	// Kind names the method ("cgroup-cpu.max" or "sigstop").
	Kind() string
	// Set takes the fraction f (0 <= f < 1) of the task's CPU time away;
	// 0 lets it run freely.
	Set(f float64) error
	// Pause lets the task run freely until Resume (the engine pauses the
	// throttle while it freezes the task itself).
	Pause()
	Resume()
	// Stop ends throttling for good and leaves the task as it was.
	Stop() error
}

// NewThrottle returns a cgroup v2 cpu.max throttle when pid is alone in a
// cgroup whose cpu.max we may write, otherwise a SIGSTOP/SIGCONT duty cycle.
func NewThrottle(pid int) Throttle {
	if t, err := newCgroupThrottle(pid); err == nil {
		return t
	}
	return newSignalThrottle(pid, 100*time.Millisecond)
}

// cgroupThrottle writes the task's cgroup cpu.max, and puts back what was
// there on Stop. It is used only when the task is alone in its cgroup:
// cpu.max throttles everything in the cgroup.
type cgroupThrottle struct {
	path   string // the cpu.max file
	old    string
	period uint64
	mu     sync.Mutex
	f      float64
	paused bool
}

// ErrNoCgroup: the task has no cgroup v2 cpu.max we may use.
var ErrNoCgroup = errors.New("no usable cgroup v2 cpu.max")

func newCgroupThrottle(pid int) (*cgroupThrottle, error) {
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, err
	}
	rel, ok := cgroupV2Path(cg)
	if !ok {
		return nil, fmt.Errorf("task %d is in no cgroup v2 hierarchy: %w", pid, ErrNoCgroup)
	}
	mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", os.Getpid()))
	if err != nil {
		return nil, err
	}
	mnt, ok := cgroup2Mount(mi)
	if !ok {
		return nil, fmt.Errorf("no cgroup2 mount: %w", ErrNoCgroup)
	}
	dir := filepath.Join(mnt, filepath.Clean("/"+rel))
	if rel == "/" {
		return nil, fmt.Errorf("task %d is in the root cgroup: %w", pid, ErrNoCgroup)
	}
	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoCgroup, err)
	}
	if f := strings.Fields(string(procs)); len(f) != 1 || f[0] != strconv.Itoa(pid) {
		return nil, fmt.Errorf("cgroup %s holds other processes: %w", dir, ErrNoCgroup)
	}
	path := filepath.Join(dir, "cpu.max")
	old, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoCgroup, err)
	}
	if err := unix.Access(path, unix.W_OK); err != nil {
		return nil, fmt.Errorf("%s not writable: %w", path, ErrNoCgroup)
	}
	_, period, err := parseCPUMax(old)
	if err != nil {
		return nil, err
	}
	return &cgroupThrottle{path: path, old: strings.TrimSpace(string(old)), period: period}, nil
}

// cgroupV2Path returns the path of the unified-hierarchy line ("0::/x") of
// a /proc/PID/cgroup file.
func cgroupV2Path(b []byte) (string, bool) {
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "0::"); ok {
			return rest, true
		}
	}
	return "", false
}

// cgroup2Mount returns where a cgroup2 file system is mounted, from
// /proc/PID/mountinfo ("... mountpoint ... - cgroup2 source opts").
func cgroup2Mount(b []byte) (string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for i, x := range f {
			if x == "-" && i+1 < len(f) && f[i+1] == "cgroup2" && len(f) > 4 {
				return unescapeMount(f[4]), true
			}
		}
	}
	return "", false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ErrCPUMaxFormat: a cpu.max file that is not "QUOTA|max PERIOD".
var ErrCPUMaxFormat = errors.New("cpu.max: unexpected format")

// parseCPUMax parses cpu.max ("max 100000" or "50000 100000"); quota 0
// means "max".
func parseCPUMax(b []byte) (quota, period uint64, err error) {
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("%w: %q", ErrCPUMaxFormat, b)
	}
	if f[0] != "max" {
		if quota, err = strconv.ParseUint(f[0], 10, 64); err != nil || quota == 0 {
			return 0, 0, fmt.Errorf("%w: %q", ErrCPUMaxFormat, b)
		}
	}
	if period, err = strconv.ParseUint(f[1], 10, 64); err != nil || period == 0 {
		return 0, 0, fmt.Errorf("%w: %q", ErrCPUMaxFormat, b)
	}
	return quota, period, nil
}

// cpuMaxFor is the cpu.max line that leaves the task 1-f of one CPU per
// period (the kernel's minimum quota is 1 ms).
func cpuMaxFor(f float64, period uint64) string {
	if f <= 0 {
		return fmt.Sprintf("max %d", period)
	}
	q := max(uint64(float64(period)*(1-f)), 1000)
	return fmt.Sprintf("%d %d", q, period)
}

func (c *cgroupThrottle) Kind() string { return "cgroup-cpu.max" }

func (c *cgroupThrottle) write(s string) error {
	if err := os.WriteFile(c.path, []byte(s), 0); err != nil {
		return fmt.Errorf("throttle: write %q to %s: %w", s, c.path, err)
	}
	return nil
}

func (c *cgroupThrottle) Set(f float64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.f = f
	if c.paused {
		return nil
	}
	return c.write(cpuMaxFor(f, c.period))
}

func (c *cgroupThrottle) Pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.paused = true
	_ = c.write(c.old) // best effort: a failed write leaves the throttle on, which is safe
}

func (c *cgroupThrottle) Resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.paused = false
	if c.f > 0 {
		_ = c.write(cpuMaxFor(c.f, c.period))
	}
}

func (c *cgroupThrottle) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.f, c.paused = 0, true
	err := c.write(c.old)
	if errors.Is(err, os.ErrNotExist) {
		return nil // the cgroup went away with the task
	}
	return err
}

// signalThrottle stops the task with SIGSTOP for f of every period and
// lets it run (SIGCONT) for the rest. The task always ends running: every
// path out of the cycle sends SIGCONT.
type signalThrottle struct {
	pid    int
	period time.Duration
	mu     sync.Mutex
	f      float64
	paused bool
	wake   chan struct{}
	done   chan struct{}
	once   sync.Once
	// Cycles counts stop/continue cycles (for tests).
	Cycles int
}

func newSignalThrottle(pid int, period time.Duration) *signalThrottle {
	s := &signalThrottle{pid: pid, period: period, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go s.loop()
	return s
}

func (s *signalThrottle) Kind() string { return "sigstop" }

func (s *signalThrottle) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *signalThrottle) Set(f float64) error {
	s.mu.Lock()
	s.f = min(max(f, 0), 0.99)
	s.mu.Unlock()
	s.poke()
	return nil
}

// Pause returns once the task is running and stays so until Resume.
func (s *signalThrottle) Pause() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paused = true
	_ = unix.Kill(s.pid, unix.SIGCONT) // under mu: the loop cannot stop it again meanwhile
}

func (s *signalThrottle) Resume() {
	s.mu.Lock()
	s.paused = false
	s.mu.Unlock()
	s.poke()
}

// Stop ends the cycle and returns when the task has been continued.
func (s *signalThrottle) Stop() error {
	s.once.Do(func() { close(s.done) })
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paused = true
	if err := unix.Kill(s.pid, unix.SIGCONT); err != nil && err != unix.ESRCH {
		return fmt.Errorf("throttle: continue %d: %w", s.pid, err)
	}
	return nil
}

func (s *signalThrottle) loop() {
	for {
		s.mu.Lock()
		f, paused := s.f, s.paused
		stopped := false
		if f > 0 && !paused {
			select {
			case <-s.done:
			default:
				stopped = unix.Kill(s.pid, unix.SIGSTOP) == nil
			}
		}
		s.mu.Unlock()
		if !stopped {
			select {
			case <-s.done:
				return
			case <-s.wake:
			case <-time.After(s.period):
			}
			continue
		}
		off := time.Duration(float64(s.period) * f)
		t := time.NewTimer(off)
		select {
		case <-s.done:
		case <-t.C:
		case <-s.wake:
		}
		t.Stop()
		s.mu.Lock()
		_ = unix.Kill(s.pid, unix.SIGCONT)
		s.Cycles++
		s.mu.Unlock()
		select {
		case <-s.done:
			return
		case <-time.After(s.period - off):
		}
	}
}
