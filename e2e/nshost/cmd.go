package nshost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrPIDTaken is returned by Start when the host could not give the
// command the PID in Cmd.WantPID.
var ErrPIDTaken = errors.New("nshost: the wanted pid is taken")

// ErrHostDown is returned when a host's init is gone: the host was killed or
// closed, so it cannot start a command or report how one ended.
var ErrHostDown = errors.New("nshost: host is down")

// Cmd is a command to run inside a host, in the host's PID, mount, network,
// UTS and IPC namespaces. It is shaped like [exec.Cmd]: fill the fields,
// then Start and Wait, or Run, Output, CombinedOutput.
type Cmd struct {
	Path string   // the program; resolved with the harness's PATH by Command
	Args []string // the argument vector, Args[0] included
	// Env is the environment. Nil means the harness's own environment
	// with TMPDIR set to the host's work directory.
	Env []string
	Dir string // working directory inside the host; empty: the harness's

	// Stdin, Stdout and Stderr are as in exec.Cmd: nil is /dev/null, an
	// *os.File is passed as is, anything else is copied through a pipe.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer

	// Credential, when set, runs the command as another user (the init
	// is root). Groups nil means no supplementary groups.
	Credential *syscall.Credential

	// WantPID, when not 0, is the PID the command must get inside the
	// host: Start fails with ErrPIDTaken (and kills what it started) if
	// the host gave another one, because the PID was in use or another
	// task of the host took it first. For tests that need a PID taken on
	// the destination of a move.
	WantPID int

	// WaitDelay bounds how long Wait waits, after the command has exited,
	// for its output pipes to be closed (a child of the command may hold
	// them). Zero means 5 s.
	WaitDelay time.Duration

	// Process is set by Start.
	Process *Process

	host  *Host
	ctx   context.Context
	err   error // set by Command when the program cannot be found
	conn  *net.UnixConn
	done  chan struct{}
	state syscall.WaitStatus
	wErr  error // how the host reported the end: nil or ErrHostDown

	closeAfterStart []*os.File
	closeAfterWait  []io.Closer
	copiers         sync.WaitGroup
	copyErrs        chan error
	waited          bool
}

// Process is a command started in a host.
type Process struct {
	PID     int // as seen inside the host
	RootPID int // as seen from the machine's (the harness's) PID namespace

	mu    sync.Mutex
	pidfd int // -1 once closed
}

// Signal sends sig to the process. It is safe against PID reuse: it goes
// through a pidfd.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pidfd < 0 {
		return os.ErrProcessDone
	}
	if err := unix.PidfdSendSignal(p.pidfd, sig, nil, 0); err != nil {
		if err == unix.ESRCH {
			return os.ErrProcessDone
		}
		return fmt.Errorf("nshost: signal %d: %w", p.RootPID, err)
	}
	return nil
}

// Kill sends SIGKILL to the process.
func (p *Process) Kill() error { return p.Signal(syscall.SIGKILL) }

func (p *Process) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pidfd >= 0 {
		unix.Close(p.pidfd)
		p.pidfd = -1
	}
}

// Command returns the Cmd to run name with args in the host. A name without
// a slash is looked up in the harness's PATH (the hosts share the machine's
// file system). When ctx is done before the command ends, the command is
// killed with SIGKILL.
func (h *Host) Command(ctx context.Context, name string, args ...string) *Cmd {
	c := &Cmd{Path: name, Args: append([]string{name}, args...), host: h, ctx: ctx}
	if !strings.Contains(name, "/") {
		p, err := exec.LookPath(name)
		if err != nil {
			c.err = err
		} else {
			c.Path = p
		}
	}
	return c
}

// Start starts the command in the host and fills c.Process.
func (c *Cmd) Start() error {
	if c.err != nil {
		return c.err
	}
	if c.Process != nil {
		return errors.New("nshost: Start called twice")
	}
	if c.ctx == nil {
		c.ctx = context.Background()
	}
	if err := c.ctx.Err(); err != nil {
		return err
	}
	env := c.Env
	if env == nil {
		env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "TMPDIR=") })
		env = append(env, "TMPDIR="+c.host.TmpDir())
	}
	dir := c.Dir
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("nshost: working directory: %w", err)
		}
		dir = wd
	}
	if c.WantPID < 0 || c.WantPID == 1 {
		return fmt.Errorf("nshost: WantPID %d: want 0 or a PID above 1", c.WantPID)
	}
	sr := spawnRequest{Path: c.Path, Args: c.Args, Env: env, Dir: dir, WantPID: c.WantPID}
	if cr := c.Credential; cr != nil {
		sr.Cred = &credential{UID: cr.Uid, GID: cr.Gid, Groups: cr.Groups}
	}
	req, err := json.Marshal(sr)
	if err != nil {
		return fmt.Errorf("nshost: encode request: %w", err)
	}
	if len(req) > maxMessage {
		return fmt.Errorf("nshost: %s: arguments and environment take %d bytes, more than %d", c.Path, len(req), maxMessage)
	}
	stdio, err := c.stdio()
	if err != nil {
		c.closeAll()
		return err
	}
	fds := make([]int, len(stdio))
	for i, f := range stdio {
		fds[i] = int(f.Fd())
	}
	conn, err := c.host.dial()
	if err != nil {
		c.closeAll()
		return err
	}
	conn.SetWriteBuffer(maxMessage) // the kernel doubles it: room for the headers
	_, _, err = conn.WriteMsgUnix(req, unix.UnixRights(fds...), nil)
	for _, f := range c.closeAfterStart {
		f.Close()
	}
	c.closeAfterStart = nil
	if err != nil {
		conn.Close()
		c.closeAll()
		return fmt.Errorf("nshost: send %s to host %s: %w", c.Path, c.host.Name, err)
	}
	r, rfds, err := readReply(conn)
	if err == nil && r.Kind == replyError {
		err = fmt.Errorf("nshost: host %s: %s", c.host.Name, r.Error)
	} else if err == nil && (r.Kind != replyStarted || len(rfds) != 1) {
		err = fmt.Errorf("%w: expected started with one pidfd, got %q with %d", errBadMessage, r.Kind, len(rfds))
	}
	if err != nil {
		for _, fd := range rfds {
			unix.Close(fd)
		}
		conn.Close()
		c.closeAll()
		return err
	}
	p := &Process{PID: r.PID, pidfd: rfds[0]}
	pids, err := pidfdNSpid(p.pidfd)
	if err == nil {
		_, err = conn.Write([]byte("ack")) // the init may reap it now
	}
	if err == nil && pids[len(pids)-1] != r.PID {
		err = fmt.Errorf("nshost: host %s reports pid %d, the kernel %v", c.host.Name, r.PID, pids)
	}
	if err == nil && c.WantPID != 0 && r.PID != c.WantPID {
		err = fmt.Errorf("%w: host %s gave %d instead of %d", ErrPIDTaken, c.host.Name, r.PID, c.WantPID)
	}
	if err != nil {
		p.Kill()
		p.close()
		conn.Close()
		c.closeAll()
		return fmt.Errorf("nshost: pids of %s: %w", c.Path, err)
	}
	p.RootPID = pids[0]
	c.Process = p
	c.conn = conn
	c.done = make(chan struct{})
	go c.watch()
	return nil
}

// watch waits for the exit report and kills the command when ctx ends first.
func (c *Cmd) watch() {
	exited := make(chan struct{})
	go func() {
		select {
		case <-c.ctx.Done():
			c.Process.Kill()
		case <-exited:
		}
	}()
	r, fds, err := readReply(c.conn)
	for _, fd := range fds {
		unix.Close(fd)
	}
	switch {
	case err != nil:
		c.wErr = fmt.Errorf("%w: lost host %s while waiting for pid %d: %v", ErrHostDown, c.host.Name, c.Process.PID, err)
	case r.Kind != replyExit:
		c.wErr = fmt.Errorf("%w: expected exit, got %q", errBadMessage, r.Kind)
	default:
		c.state = syscall.WaitStatus(r.Status)
	}
	close(exited)
	c.conn.Close()
	close(c.done)
}

// Exited reports, without blocking, whether the command has ended.
func (c *Cmd) Exited() bool {
	if c.done == nil {
		return false
	}
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Done is closed when the command has ended (nil before Start).
func (c *Cmd) Done() <-chan struct{} { return c.done }

// Wait waits for the command to end and for its output to be copied. It
// returns *ExitError for a status other than 0, and ErrHostDown when the host
// died first.
func (c *Cmd) Wait() error {
	if c.Process == nil {
		return errors.New("nshost: Wait before Start")
	}
	if c.waited {
		return errors.New("nshost: Wait called twice")
	}
	c.waited = true
	<-c.done
	c.Process.close()

	delay := c.WaitDelay
	if delay == 0 {
		delay = 5 * time.Second
	}
	copied := make(chan struct{})
	go func() { c.copiers.Wait(); close(copied) }()
	var copyErr error
	select {
	case <-copied:
	case <-time.After(delay):
		copyErr = fmt.Errorf("nshost: output of %s still open %v after it exited", c.Path, delay)
	}
	c.closeAll()
	if copyErr == nil {
		select {
		case copyErr = <-c.copyErrs:
		default:
		}
	}
	if c.wErr != nil {
		return c.wErr
	}
	if c.state != 0 {
		return &ExitError{Status: c.state}
	}
	return copyErr
}

// Run starts the command and waits for it.
func (c *Cmd) Run() error {
	if err := c.Start(); err != nil {
		return err
	}
	return c.Wait()
}

// Output runs the command and returns its standard output.
func (c *Cmd) Output() ([]byte, error) {
	if c.Stdout != nil {
		return nil, errors.New("nshost: Stdout already set")
	}
	var out bytes.Buffer
	c.Stdout = &out
	err := c.Run()
	return out.Bytes(), err
}

// CombinedOutput runs the command and returns its standard output and error.
func (c *Cmd) CombinedOutput() ([]byte, error) {
	if c.Stdout != nil || c.Stderr != nil {
		return nil, errors.New("nshost: Stdout or Stderr already set")
	}
	var out syncBuffer
	c.Stdout = &out
	c.Stderr = &out
	err := c.Run()
	return out.Bytes(), err
}

// stdio returns the three files to hand to the command.
func (c *Cmd) stdio() ([]*os.File, error) {
	c.copyErrs = make(chan error, 3)
	in, err := c.inputFile(c.Stdin)
	if err != nil {
		return nil, err
	}
	out, err := c.outputFile(c.Stdout)
	if err != nil {
		return nil, err
	}
	errf := out
	if c.Stdout == nil || !sameWriter(c.Stdout, c.Stderr) {
		errf, err = c.outputFile(c.Stderr)
		if err != nil {
			return nil, err
		}
	}
	return []*os.File{in, out, errf}, nil
}

func (c *Cmd) inputFile(r io.Reader) (*os.File, error) {
	if r == nil {
		return c.devNull(os.O_RDONLY)
	}
	if f, ok := r.(*os.File); ok {
		return f, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("nshost: pipe: %w", err)
	}
	c.closeAfterStart = append(c.closeAfterStart, pr)
	c.closeAfterWait = append(c.closeAfterWait, pw)
	c.copiers.Add(1)
	go func() {
		defer c.copiers.Done()
		_, err := io.Copy(pw, r)
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrClosed) {
			err = nil
		}
		pw.Close()
		if err != nil {
			c.copyErrs <- err
		}
	}()
	return pr, nil
}

func (c *Cmd) outputFile(w io.Writer) (*os.File, error) {
	if w == nil {
		return c.devNull(os.O_WRONLY)
	}
	if f, ok := w.(*os.File); ok {
		return f, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("nshost: pipe: %w", err)
	}
	c.closeAfterStart = append(c.closeAfterStart, pw)
	c.closeAfterWait = append(c.closeAfterWait, pr)
	c.copiers.Add(1)
	go func() {
		defer c.copiers.Done()
		_, err := io.Copy(w, pr)
		if errors.Is(err, os.ErrClosed) {
			err = nil
		}
		if err != nil {
			c.copyErrs <- err
		}
	}()
	return pw, nil
}

func (c *Cmd) devNull(flag int) (*os.File, error) {
	f, err := os.OpenFile(os.DevNull, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("nshost: %w", err)
	}
	c.closeAfterStart = append(c.closeAfterStart, f)
	return f, nil
}

func (c *Cmd) closeAll() {
	for _, f := range c.closeAfterStart {
		f.Close()
	}
	c.closeAfterStart = nil
	for _, f := range c.closeAfterWait {
		f.Close()
	}
	c.closeAfterWait = nil
}

// readReply reads one reply and the descriptors that came with it.
func readReply(conn *net.UnixConn) (*reply, []int, error) {
	buf := make([]byte, maxMessage)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, nil, err
	}
	if n == 0 {
		return nil, nil, io.EOF
	}
	fds, err := receivedFDs(oob[:oobn])
	if err != nil {
		return nil, nil, err
	}
	r, err := decodeReply(buf[:n])
	if err != nil {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, nil, err
	}
	return r, fds, nil
}

// pidfdNSpid reads the NSpid line of a pidfd's fdinfo: the process's PID in
// the harness's namespace first and inside its host last.
func pidfdNSpid(pidfd int) ([]int, error) {
	b, err := os.ReadFile(filepath.Join("/proc/self/fdinfo", fmt.Sprint(pidfd)))
	if err != nil {
		return nil, err
	}
	return parseNSpid(b)
}

// syncBuffer is a bytes.Buffer that two copiers may write at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Bytes()
}

// sameWriter reports whether a and b are the same writer, without panicking
// on writers of types that cannot be compared.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}
