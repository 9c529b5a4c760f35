package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/image"
)

// Managed tasks: the processes this agent looks after and may move on its
// own (the rebalancer moves only these). A task is started by the agent
// (POST /v1/tasks, `migrated run`) with stdin /dev/null and stdout/stderr
// to a log file in the agent's state directory, so it holds only fds the
// engine can move, or adopted (POST /v1/tasks/adopt, `migrated adopt`).
// A task that arrives here by an automatic move becomes managed here.

func init() {
	RegisterService(Service{Name: "managed", Start: startManaged})
	RegisterEndpoint("POST /v1/tasks", postTask)
	RegisterEndpoint("POST /v1/tasks/adopt", postAdopt)
	RegisterEndpoint("GET /v1/tasks", getTasks)
}

// ManagedTask is one managed task as GET /v1/tasks lists it.
type ManagedTask struct {
	Name    string    `json:"name"`
	PID     int       `json:"pid"`
	Argv    []string  `json:"argv,omitempty"`
	Log     string    `json:"log,omitempty"`
	Adopted bool      `json:"adopted,omitempty"`
	Started time.Time `json:"started"`
	// LastMoved is when the task arrived here by a move (zero if never).
	LastMoved time.Time `json:"last_moved,omitzero"`
	MovedFrom string    `json:"moved_from,omitempty"`
	// CPU is the recent CPU use in CPUs (1 = one CPU busy), RSS in bytes,
	// both from /proc.
	CPU float64 `json:"cpu"`
	RSS uint64  `json:"rss"`
	// MovingTo is the target of a move in flight.
	MovingTo string `json:"moving_to,omitempty"`

	manifest *image.Manifest
	cpuTicks uint64
	sampled  time.Time
}

// RunRequest starts a managed task (POST /v1/tasks).
type RunRequest struct {
	Name string   `json:"name,omitempty"`
	Argv []string `json:"argv"`
	Env  []string `json:"env,omitempty"`
	Dir  string   `json:"dir,omitempty"`
	// Log is the file for the task's stdout and stderr (appended to);
	// empty: a new file in the agent's state directory. A move reopens
	// it by path on the destination, so a task meant to move between hosts
	// needs a log on storage they share.
	Log string `json:"log,omitempty"`
}

// AdoptRequest marks a running process as managed (POST /v1/tasks/adopt).
type AdoptRequest struct {
	PID  int    `json:"pid"`
	Name string `json:"name,omitempty"`
}

// managedSet is the per-agent registry of managed tasks.
type managedSet struct {
	a     *Agent
	dir   string
	mu    sync.Mutex
	tasks map[string]*ManagedTask // by name
	// host CPU sampling: the CPU use of every process /proc shows.
	hostTicks  map[int]uint64
	hostLoad   float64
	hostSample time.Time
}

var managedSets sync.Map // *Agent -> *managedSet

func managedOf(a *Agent) (*managedSet, error) {
	m, ok := managedSets.Load(a)
	if !ok {
		return nil, fmt.Errorf("%w: the managed-task service is not running", ErrUnavailable)
	}
	return m.(*managedSet), nil
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat
// (100 on every Linux architecture migrated runs on).
const clockTicks = 100

// samplePeriod is how often CPU use is sampled.
const samplePeriod = time.Second

func startManaged(ctx context.Context, a *Agent) (func(context.Context) error, error) {
	dir := filepath.Join(filepath.Dir(a.Options().Control), "tasks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("managed tasks: state directory: %w", err)
	}
	m := &managedSet{a: a, dir: dir, tasks: map[string]*ManagedTask{}, hostTicks: map[int]uint64{}}
	managedSets.Store(a, m)
	a.SetTaskCounter(func() int {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.tasks)
	})
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(samplePeriod)
		defer t.Stop()
		m.sample(time.Now())
		for {
			select {
			case <-sctx.Done():
				return
			case now := <-t.C:
				m.sample(now)
			}
		}
	}()
	return func(context.Context) error {
		cancel()
		<-done
		managedSets.Delete(a)
		return nil
	}, nil
}

var taskName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// add registers t under a free name (its own, or NAME-2, NAME-3...).
func (m *managedSet) add(t *ManagedTask) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.tasks {
		if o.PID == t.PID {
			return fmt.Errorf("%w: pid %d is managed already as %s", ErrConflict, t.PID, o.Name)
		}
	}
	base := t.Name
	for i := 2; m.tasks[t.Name] != nil; i++ {
		t.Name = fmt.Sprintf("%s-%d", base, i)
	}
	m.tasks[t.Name] = t
	return nil
}

func (m *managedSet) remove(name string) {
	m.mu.Lock()
	delete(m.tasks, name)
	m.mu.Unlock()
}

func (m *managedSet) setMoving(name, target string) {
	m.mu.Lock()
	if t := m.tasks[name]; t != nil {
		t.MovingTo = target
	}
	m.mu.Unlock()
}

// list returns copies of the tasks, sorted by name.
func (m *managedSet) list() []ManagedTask {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ManagedTask, 0, len(m.tasks))
	for _, t := range m.tasks {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// load is the host's CPU use in CPUs over the last sample period: the sum
// over every process /proc shows (in a namespace host, the host's own).
func (m *managedSet) load() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hostLoad
}

// sample updates every task's CPU share and RSS, forgets tasks that exited
// (and are not moving), and measures the host's CPU use.
func (m *managedSet) sample(now time.Time) {
	ents, _ := os.ReadDir("/proc")
	ticks := make(map[int]uint64, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if st, err := ParseProcStat(b); err == nil {
			ticks[pid] = st.UTime + st.STime
			if st.State == 'Z' {
				reapOwnChild(pid)
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.hostSample.IsZero() {
		dt := now.Sub(m.hostSample).Seconds()
		var sum uint64
		for pid, t := range ticks {
			if old, ok := m.hostTicks[pid]; ok && t >= old {
				sum += t - old
			}
		}
		if dt > 0 {
			m.hostLoad = float64(sum) / clockTicks / dt
		}
	}
	m.hostTicks, m.hostSample = ticks, now
	for name, t := range m.tasks {
		cur, ok := ticks[t.PID]
		if !ok {
			// Not in the scan: gone, or started after the scan began.
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", t.PID)); err == nil {
				continue
			}
			if t.MovingTo == "" {
				m.a.Logger().Info("managed task ended", "task", name, "pid", t.PID)
				delete(m.tasks, name)
			}
			continue
		}
		if !t.sampled.IsZero() && cur >= t.cpuTicks {
			if dt := now.Sub(t.sampled).Seconds(); dt > 0 {
				t.CPU = float64(cur-t.cpuTicks) / clockTicks / dt
			}
		}
		t.cpuTicks, t.sampled = cur, now
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", t.PID)); err == nil {
			if rss, err := ParseStatmRSS(b, os.Getpagesize()); err == nil {
				t.RSS = rss
			}
		}
	}
}

// ProcStat is what the agent reads of /proc/PID/stat.
type ProcStat struct {
	State        byte
	UTime, STime uint64 // clock ticks
	Threads      int
	Nice         int
}

// ownChildren are the children the agent leaves unwaited, which sample
// reaps once they are zombies: tasks it started (no cmd.Wait: a wait of
// the parent would take the ptrace stops of a move's freeze) and tasks a
// move restored here (the restorer's clone makes them the agent's
// children). Only those: an agent running inside another program (the
// tests) must not reap that program's children behind its back.
var ownChildren sync.Map // pid -> struct{}

// reapOwnChild reaps pid, a zombie, if it is one of ownChildren.
func reapOwnChild(pid int) {
	if _, ok := ownChildren.Load(pid); !ok {
		return
	}
	var ws unix.WaitStatus
	if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); got == pid || err == unix.ECHILD {
		ownChildren.Delete(pid)
	}
}

// ErrProcFormat: a /proc file does not have the expected format.
var ErrProcFormat = errors.New("unexpected /proc format")

// ParseProcStat parses /proc/PID/stat. The command name may hold spaces and
// parentheses, so the fields are counted from the last ')'.
func ParseProcStat(b []byte) (ProcStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ProcStat{}, fmt.Errorf("%w: stat without ')'", ErrProcFormat)
	}
	f := bytes.Fields(b[i+1:])
	// After the name: state(3) ppid ... utime(14) stime(15) ... num_threads(20).
	if len(f) < 18 || len(f[0]) != 1 {
		return ProcStat{}, fmt.Errorf("%w: stat has %d fields after the name", ErrProcFormat, len(f))
	}
	var st ProcStat
	var err error
	st.State = f[0][0]
	if st.UTime, err = strconv.ParseUint(string(f[11]), 10, 64); err != nil {
		return ProcStat{}, fmt.Errorf("%w: utime %q", ErrProcFormat, f[11])
	}
	if st.STime, err = strconv.ParseUint(string(f[12]), 10, 64); err != nil {
		return ProcStat{}, fmt.Errorf("%w: stime %q", ErrProcFormat, f[12])
	}
	n, err := strconv.ParseInt(string(f[17]), 10, 32)
	if err != nil || n < 0 {
		return ProcStat{}, fmt.Errorf("%w: num_threads %q", ErrProcFormat, f[17])
	}
	st.Threads = int(n)
	nice, err := strconv.ParseInt(string(f[16]), 10, 32)
	if err != nil || nice < -20 || nice > 19 {
		return ProcStat{}, fmt.Errorf("%w: nice %q", ErrProcFormat, f[16])
	}
	st.Nice = int(nice)
	return st, nil
}

// ParseStatmRSS returns the resident set size in bytes from /proc/PID/statm.
func ParseStatmRSS(b []byte, pageSize int) (uint64, error) {
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, fmt.Errorf("%w: statm %q", ErrProcFormat, b)
	}
	n, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil || n > 1<<40 {
		return 0, fmt.Errorf("%w: statm resident %q", ErrProcFormat, f[1])
	}
	return n * uint64(pageSize), nil
}

func postTask(a *Agent, r *http.Request) (any, error) {
	var req RunRequest
	if err := DecodeJSON(r, &req); err != nil {
		return nil, err
	}
	cred, ok := PeerCred(r.Context())
	if !ok {
		return nil, fmt.Errorf("%w: no peer credentials", ErrNotPermitted)
	}
	m, err := managedOf(a)
	if err != nil {
		return nil, err
	}
	if len(req.Argv) == 0 || req.Argv[0] == "" {
		return nil, fmt.Errorf("%w: no command", ErrBadRequest)
	}
	if req.Name == "" {
		req.Name = filepath.Base(req.Argv[0])
	}
	if !taskName.MatchString(req.Name) {
		return nil, fmt.Errorf("%w: task name %q: letters, digits, '.', '_' and '-' only, at most 64", ErrBadRequest, req.Name)
	}
	path, err := exec.LookPath(req.Argv[0])
	if err != nil && !errors.Is(err, exec.ErrDot) {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if req.Dir != "" && !filepath.IsAbs(req.Argv[0]) && filepath.Base(req.Argv[0]) != req.Argv[0] {
		path = filepath.Join(req.Dir, req.Argv[0])
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	var logf *os.File
	if req.Log != "" {
		if !filepath.IsAbs(req.Log) {
			return nil, fmt.Errorf("%w: log %q is not an absolute path", ErrBadRequest, req.Log)
		}
		logf, err = os.OpenFile(req.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	} else {
		logf, err = os.CreateTemp(m.dir, req.Name+"-*.log")
	}
	if err != nil {
		return nil, fmt.Errorf("%w: task log: %v", ErrBadRequest, err)
	}
	defer logf.Close()
	if cred.Uid != 0 {
		_ = logf.Chown(int(cred.Uid), int(cred.Gid))
	}
	cmd := &exec.Cmd{Path: path, Args: req.Argv, Env: req.Env, Dir: req.Dir,
		Stdin: devnull, Stdout: logf, Stderr: logf,
		// Its own session: no controlling terminal, and no signal meant for
		// the agent's process group reaches it.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	if cred.Uid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: cred.Uid, Gid: cred.Gid}
	}
	closeInheritedOnExec()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: start %s: %v", ErrBadRequest, req.Argv[0], err)
	}
	// No cmd.Wait: a wait of the parent would take the ptrace stops of a
	// move's freeze (the agent is both parent and tracer). sample reaps the
	// task once it is a zombie.
	pid := cmd.Process.Pid
	// The task runs at the caller's niceness, not the agent's (the agent
	// may run niced so that pre-copy yields to the tasks it moves).
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cred.Pid)); err == nil {
		if st, err := ParseProcStat(b); err == nil {
			_ = unix.Setpriority(unix.PRIO_PROCESS, pid, st.Nice)
		}
	}
	_ = cmd.Process.Release() // (Release sets Process.Pid to -1)
	ownChildren.Store(pid, struct{}{})
	t := &ManagedTask{Name: req.Name, PID: pid, Argv: req.Argv, Log: logf.Name(), Started: time.Now()}
	if err := m.add(t); err != nil {
		return nil, err
	}
	a.Logger().Info("managed task started", "task", t.Name, "pid", t.PID, "argv", req.Argv, "log", t.Log)
	return t, nil
}

// closeInheritedOnExec marks every fd of the agent above 2 close-on-exec:
// the fds Go opens are already, but one the agent inherited from whatever
// started it (a pipe of a test harness, say) would otherwise leak into the
// task, and the engine refuses to move a pipe.
func closeInheritedOnExec() {
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}
}

func postAdopt(a *Agent, r *http.Request) (any, error) {
	var req AdoptRequest
	if err := DecodeJSON(r, &req); err != nil {
		return nil, err
	}
	if err := authorizeCaller(r, req.PID); err != nil {
		return nil, err
	}
	m, err := managedOf(a)
	if err != nil {
		return nil, err
	}
	if req.Name == "" {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", req.PID))
		req.Name = string(bytes.TrimSpace(comm))
		if !taskName.MatchString(req.Name) {
			req.Name = "pid" + strconv.Itoa(req.PID)
		}
	}
	if !taskName.MatchString(req.Name) {
		return nil, fmt.Errorf("%w: task name %q: letters, digits, '.', '_' and '-' only, at most 64", ErrBadRequest, req.Name)
	}
	t := &ManagedTask{Name: req.Name, PID: req.PID, Adopted: true, Started: time.Now()}
	if err := m.add(t); err != nil {
		return nil, err
	}
	a.Logger().Info("process adopted as a managed task", "task", t.Name, "pid", t.PID)
	return t, nil
}

func getTasks(a *Agent, r *http.Request) (any, error) {
	m, err := managedOf(a)
	if err != nil {
		return nil, err
	}
	return m.list(), nil
}
