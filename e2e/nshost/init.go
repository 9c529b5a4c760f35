package nshost

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// initEnv carries the initConfig (JSON) of a host init. The harness sets it
// when it starts /proc/self/exe as the init of a new host; see the package doc.
const initEnv = "NSHOST_INIT"

// The descriptors the harness gives a host init besides stdin, stdout, stderr.
const (
	initReadyFD    = 3 // the init writes "ready\n" or "error: ...\n", then closes it
	initLifelineFD = 4 // the harness holds the only writer: EOF means it is gone
)

type initConfig struct {
	Name     string `json:"name"`      // host name, also the UTS host name
	Socket   string `json:"socket"`    // where to listen for spawn requests
	FirstPID int    `json:"first_pid"` // where the host starts allocating PIDs
	Hosts    string `json:"hosts"`     // a file to bind over /etc/hosts
}

func init() {
	v, ok := os.LookupEnv(initEnv)
	if !ok {
		return
	}
	// This process is a host init: it never returns into the program.
	os.Exit(runInit(v))
}

// runInit is the whole life of a host init. Its exit status goes to the
// harness's log only: the harness learns about failures through the ready pipe.
func runInit(cfgJSON string) int {
	os.Unsetenv(initEnv)
	ready := os.NewFile(initReadyFD, "ready")
	lifeline := os.NewFile(initLifelineFD, "lifeline")
	if ready == nil || lifeline == nil {
		fmt.Fprintln(os.Stderr, "nshost init: started without its pipes")
		return 2
	}
	syscall.CloseOnExec(initReadyFD)
	syscall.CloseOnExec(initLifelineFD)

	srv, err := setupInit(cfgJSON)
	if err != nil {
		fmt.Fprintf(ready, "error: %v\n", err)
		return 1
	}
	go func() {
		// Blocks until the harness closes its end or dies.
		io.Copy(io.Discard, lifeline)
		os.Exit(0) // PID 1 exits: the kernel kills the whole host
	}()
	go srv.reap()
	fmt.Fprintln(ready, "ready")
	ready.Close()
	srv.serve()
	return 1
}

type initServer struct {
	ln      *net.UnixListener
	sigchld chan os.Signal

	mu      sync.Mutex
	waiters map[int]chan syscall.WaitStatus
	// holds counts commands started but not yet acknowledged by the
	// harness: until then nothing is reaped, so that the harness can read
	// the command's PIDs from its pidfd even if it has already exited.
	holds    int
	released *sync.Cond
}

// ackTimeout bounds how long a command's "started" may hold the reaper.
const ackTimeout = 5 * time.Second

func setupInit(cfgJSON string) (*initServer, error) {
	var cfg initConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		return nil, fmt.Errorf("decode config: %w", err)
	}
	if os.Getpid() != 1 {
		return nil, fmt.Errorf("init of host %s is pid %d, not 1 of a new pid namespace", cfg.Name, os.Getpid())
	}
	// Nothing mounted here may propagate back to the machine.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, fmt.Errorf("make / private: %w", err)
	}
	mounts := []struct {
		fstype, target, data string
		flags                uintptr
	}{
		{"proc", "/proc", "", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"tmpfs", "/run", "mode=0755", unix.MS_NOSUID | unix.MS_NODEV},
		{"tmpfs", "/dev/shm", "mode=1777", unix.MS_NOSUID | unix.MS_NODEV},
	}
	for _, m := range mounts {
		if err := unix.Mount(m.fstype, m.target, m.fstype, m.flags, m.data); err != nil {
			return nil, fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
	}
	if cfg.Hosts != "" {
		if err := unix.Mount(cfg.Hosts, "/etc/hosts", "", unix.MS_BIND, ""); err != nil {
			return nil, fmt.Errorf("bind %s on /etc/hosts: %w", cfg.Hosts, err)
		}
	}
	if cfg.FirstPID > 1 {
		if err := setNextPID(cfg.FirstPID); err != nil {
			return nil, err
		}
	}
	if err := unix.Sethostname([]byte(cfg.Name)); err != nil {
		return nil, fmt.Errorf("set host name: %w", err)
	}
	s := &initServer{
		sigchld: make(chan os.Signal, 1),
		waiters: make(map[int]chan syscall.WaitStatus),
	}
	s.released = sync.NewCond(&s.mu)
	signal.Notify(s.sigchld, syscall.SIGCHLD)
	os.Remove(cfg.Socket)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: cfg.Socket, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s.ln = ln
	return s, nil
}

// reap collects every child of the init, ours and orphans alike, and hands
// the status of spawned commands to whoever waits for them.
func (s *initServer) reap() {
	for range s.sigchld {
		for s.reapOne() {
		}
	}
}

// reapOne reaps one child if one has exited. It runs under mu, which spawn
// holds from fork to registration, and waits while commands are on hold.
func (s *initServer) reapOne() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.holds > 0 {
		s.released.Wait()
	}
	var ws syscall.WaitStatus
	pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
	if err == syscall.EINTR {
		return true
	}
	if pid <= 0 || err != nil {
		return false
	}
	if ch := s.waiters[pid]; ch != nil {
		delete(s.waiters, pid)
		ch <- ws // buffered
	}
	return true
}

func (s *initServer) release() {
	s.mu.Lock()
	s.holds--
	s.released.Broadcast()
	s.mu.Unlock()
}

func (s *initServer) serve() {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			fmt.Fprintf(os.Stderr, "nshost init: accept: %v\n", err)
			return
		}
		go s.handle(c)
	}
}

func (s *initServer) handle(c *net.UnixConn) {
	defer c.Close()
	buf := make([]byte, maxMessage)
	oob := make([]byte, unix.CmsgSpace(4*stdioFiles))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return
	}
	fds, ferr := receivedFDs(oob[:oobn])
	defer func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}()
	send := func(r reply, rights []byte) {
		b, _ := json.Marshal(r)
		c.WriteMsgUnix(b, rights, nil)
	}
	req, err := decodeRequest(buf[:n])
	if err == nil {
		err = ferr
	}
	if err == nil && len(fds) != stdioFiles {
		err = fmt.Errorf("%w: %d descriptors, want %d", errBadMessage, len(fds), stdioFiles)
	}
	if err != nil {
		send(reply{Kind: replyError, Error: err.Error()}, nil)
		return
	}
	pid, pidfd, done, err := s.spawn(req, fds)
	if err != nil {
		send(reply{Kind: replyError, Error: fmt.Sprintf("start %s: %v", req.Path, err)}, nil)
		return
	}
	send(reply{Kind: replyStarted, PID: pid}, unix.UnixRights(pidfd))
	syscall.Close(pidfd)
	// Any datagram, or the end of the connection, is the acknowledgement.
	c.SetReadDeadline(time.Now().Add(ackTimeout))
	c.Read(buf)
	c.SetReadDeadline(time.Time{})
	s.release()
	select {
	case s.sigchld <- syscall.SIGCHLD: // reap what exited meanwhile
	default: // a reaping pass is already due
	}
	ws := <-done
	send(reply{Kind: replyExit, Status: uint32(ws)}, nil)
}

func (s *initServer) spawn(req *spawnRequest, fds []int) (pid, pidfd int, done chan syscall.WaitStatus, err error) {
	files := make([]uintptr, len(fds))
	for i, fd := range fds {
		files[i] = uintptr(fd)
	}
	pidfd = -1
	attr := &syscall.ProcAttr{
		Dir:   req.Dir,
		Env:   req.Env,
		Files: files,
		Sys:   &syscall.SysProcAttr{PidFD: &pidfd},
	}
	if c := req.Cred; c != nil {
		attr.Sys.Credential = &syscall.Credential{Uid: c.UID, Gid: c.GID, Groups: c.Groups}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.WantPID > 1 {
		// As little as possible between setting the next PID and the
		// fork: a new runtime thread in between would take the PID.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := setNextPID(req.WantPID); err != nil {
			return 0, -1, nil, err
		}
	}
	pid, err = syscall.ForkExec(req.Path, req.Args, attr)
	if err != nil {
		return 0, -1, nil, err
	}
	s.holds++ // released by handle once the harness acknowledges
	if pidfd < 0 {
		// Cannot happen on kernels with CLONE_PIDFD (5.2+); kill rather
		// than leave a command nobody can signal.
		s.holds--
		syscall.Kill(pid, syscall.SIGKILL)
		return 0, -1, nil, errors.New("no pidfd for the new process")
	}
	done = make(chan syscall.WaitStatus, 1)
	s.waiters[pid] = done
	return pid, pidfd, done, nil
}

// receivedFDs extracts the descriptors of SCM_RIGHTS messages.
func receivedFDs(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("%w: control message: %v", errBadMessage, err)
	}
	var fds []int
	for i := range msgs {
		r, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		fds = append(fds, r...)
	}
	return fds, nil
}

// setNextPID makes the caller's PID namespace give pid to its next new task
// (if free): ns_last_pid is the last PID handed out.
func setNextPID(pid int) error {
	if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(fmt.Sprint(pid-1)), 0); err != nil {
		return fmt.Errorf("set next pid: %w", err)
	}
	return nil
}
