package power

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/migrated/migrated/e2e/power/ctl"
)

// ErrGuestExited is returned when the guest's QEMU is gone.
var ErrGuestExited = errors.New("power: guest QEMU exited")

// ExitError is a guest command that ran and exited non-zero, or could not start.
type ExitError struct {
	Guest  string
	Argv   []string
	Exit   int
	Err    string // set by /init when the command could not start or a builtin failed
	Output []byte
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s: %s: exit %d", e.Guest, strings.Join(e.Argv, " "), e.Exit)
	if e.Err != "" {
		msg += ": " + e.Err
	}
	if len(e.Output) > 0 {
		out := e.Output
		if len(out) > 2000 {
			out = out[len(out)-2000:]
		}
		msg += "\n" + string(out)
	}
	return msg
}

// Guest is one running QEMU guest.
type Guest struct {
	Name string
	Arch string
	CPU  string
	// Addr is eth0's address on the inter-guest link.
	Addr netip.Addr

	cmd     *exec.Cmd
	exited  chan struct{} // closed when QEMU has exited
	exitErr error

	console   consoleLog
	ctl       net.Conn
	wmu       sync.Mutex
	nextID    atomic.Uint64
	pmu       sync.Mutex
	pending   map[uint64]*pendingReq
	readerErr error
	// transcript logs every control line, both ways, for post-mortems.
	transcript *os.File
}

type pendingReq struct {
	out  bytes.Buffer
	done chan ctl.Reply
}

// consoleLog keeps the guest console: in memory for markers, on disk for people.
type consoleLog struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	file *os.File
	grow chan struct{} // closed and replaced on every append
}

func (c *consoleLog) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(b)
	if c.file != nil {
		c.file.Write(b)
	}
	close(c.grow)
	c.grow = make(chan struct{})
	return len(b), nil
}

// Console returns everything the guest printed on hvc0 so far.
func (g *Guest) Console() string {
	g.console.mu.Lock()
	defer g.console.mu.Unlock()
	return g.console.buf.String()
}

// WaitConsole waits until the console contains s.
func (g *Guest) WaitConsole(ctx context.Context, s string) error {
	for {
		g.console.mu.Lock()
		found := strings.Contains(g.console.buf.String(), s)
		grow := g.console.grow
		g.console.mu.Unlock()
		if found {
			return nil
		}
		select {
		case <-grow:
		case <-g.exited:
			if strings.Contains(g.Console(), s) {
				return nil
			}
			return fmt.Errorf("%w while waiting for %q on %s's console", ErrGuestExited, s, g.Name)
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for %q on the console: %w", g.Name, s, ctx.Err())
		}
	}
}

// consoleTail is the end of the console, for error messages.
func (g *Guest) consoleTail() string {
	s := g.Console()
	if len(s) > 3000 {
		s = s[len(s)-3000:]
	}
	return s
}

// connect dials the control socket and reads replies until it closes.
func (g *Guest) connect(ctx context.Context, sock string) error {
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			g.ctl = c
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: control socket %s: %w (last: %v)", g.Name, sock, ctx.Err(), err)
		case <-g.exited:
			return fmt.Errorf("%w before its control socket opened:\n%s", ErrGuestExited, g.consoleTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if f, err := os.Create(sock + ".log"); err == nil {
		g.transcript = f
	}
	go g.readReplies()
	return nil
}

func (g *Guest) readReplies() {
	sc := bufio.NewScanner(g.ctl)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		g.logLine("<", sc.Bytes())
		r, err := ctl.DecodeReply(sc.Bytes())
		if err != nil {
			continue
		}
		g.pmu.Lock()
		p := g.pending[r.ID]
		if p != nil {
			p.out.Write(r.Out)
			if r.Done {
				delete(g.pending, r.ID)
				p.done <- r
			}
		}
		g.pmu.Unlock()
	}
	g.pmu.Lock()
	g.readerErr = fmt.Errorf("%s: control channel closed: %v", g.Name, sc.Err())
	for id, p := range g.pending {
		close(p.done)
		delete(g.pending, id)
	}
	g.pmu.Unlock()
}

func (g *Guest) logLine(dir string, line []byte) {
	if g.transcript == nil {
		return
	}
	if len(line) > 400 {
		line = append(line[:400:400], "..."...)
	}
	fmt.Fprintf(g.transcript, "%s %s %s\n", time.Now().Format("15:04:05.000"), dir, bytes.TrimRight(line, "\r\n"))
}

// Result is a finished guest command.
type Result struct {
	Output []byte
	Exit   int
	Pid    int
}

// Exec sends req to the guest and waits for its end. A non-zero exit is an
// *ExitError carrying the output. Cancelling ctx stops the wait, not the
// command in the guest.
func (g *Guest) Exec(ctx context.Context, req ctl.Request) (Result, error) {
	req.ID = g.nextID.Add(1)
	p := &pendingReq{done: make(chan ctl.Reply, 1)}
	g.pmu.Lock()
	if g.readerErr != nil {
		g.pmu.Unlock()
		return Result{}, g.readerErr
	}
	g.pending[req.ID] = p
	g.pmu.Unlock()
	forget := func() {
		g.pmu.Lock()
		delete(g.pending, req.ID)
		g.pmu.Unlock()
	}
	line, err := ctl.Encode(req)
	if err != nil {
		forget()
		return Result{}, err
	}
	g.wmu.Lock()
	g.logLine(">", line)
	_, err = g.ctl.Write(line)
	g.wmu.Unlock()
	if err != nil {
		forget()
		return Result{}, fmt.Errorf("%s: send %v: %w", g.Name, req.Argv, err)
	}
	select {
	case r, ok := <-p.done:
		if !ok {
			return Result{}, fmt.Errorf("%s: %v: %w\n%s", g.Name, req.Argv, ErrGuestExited, g.consoleTail())
		}
		res := Result{Output: p.out.Bytes(), Exit: r.Exit, Pid: r.Pid}
		if r.Exit != 0 || r.Err != "" {
			return res, &ExitError{Guest: g.Name, Argv: req.Argv, Exit: r.Exit, Err: r.Err, Output: res.Output}
		}
		return res, nil
	case <-g.exited:
		forget()
		return Result{}, fmt.Errorf("%s: %v: %w\n%s", g.Name, req.Argv, ErrGuestExited, g.consoleTail())
	case <-ctx.Done():
		forget()
		return Result{}, fmt.Errorf("%s: %v: %w", g.Name, req.Argv, ctx.Err())
	}
}

// Run runs argv in the guest and returns its combined stdout and stderr.
func (g *Guest) Run(ctx context.Context, argv ...string) ([]byte, error) {
	r, err := g.Exec(ctx, ctl.Request{Argv: argv})
	return r.Output, err
}

// RunNamed is Run with a RESULT marker for name printed on the guest console.
func (g *Guest) RunNamed(ctx context.Context, name string, argv ...string) ([]byte, error) {
	r, err := g.Exec(ctx, ctl.Request{Argv: argv, Name: name})
	return r.Output, err
}

// Start starts argv in the background in the guest, its output appended to
// logFile in the guest ("" discards it), and returns its pid.
func (g *Guest) Start(ctx context.Context, logFile string, argv ...string) (int, error) {
	r, err := g.Exec(ctx, ctl.Request{Argv: argv, Background: true, LogFile: logFile})
	return r.Pid, err
}

// Signal sends sig to pid in the guest.
func (g *Guest) Signal(ctx context.Context, pid, sig int) error {
	_, err := g.Run(ctx, ctl.BuiltinKill, fmt.Sprint(pid), fmt.Sprint(sig))
	return err
}

// ReadFile returns a file of the guest.
func (g *Guest) ReadFile(ctx context.Context, path string) ([]byte, error) {
	return g.Run(ctx, ctl.BuiltinCat, path)
}

// hello waits until /init answers on the control channel.
func (g *Guest) hello(ctx context.Context) (string, error) {
	for {
		attempt, cancel := context.WithTimeout(ctx, 3*time.Second)
		out, err := g.Run(attempt, ctl.BuiltinHello)
		cancel()
		if err == nil && strings.HasPrefix(string(out), "hello ") {
			return strings.TrimSpace(string(out)), nil
		}
		if ctx.Err() != nil || errors.Is(err, ErrGuestExited) {
			return "", fmt.Errorf("%s: no answer on the control channel: %v, %w\n%s", g.Name, err, ctx.Err(), g.consoleTail())
		}
	}
}

// Exited is closed when the guest's QEMU has exited.
func (g *Guest) Exited() <-chan struct{} { return g.exited }

// shutdown asks the guest to power off and waits up to grace for QEMU to
// exit, then kills it. It reports whether QEMU had to be killed.
func (g *Guest) shutdown(grace time.Duration) (killed bool) {
	select {
	case <-g.exited:
		return false
	default:
	}
	if g.ctl != nil {
		if line, err := ctl.Encode(ctl.Request{ID: g.nextID.Add(1), Argv: []string{ctl.BuiltinPowerOff}}); err == nil {
			g.wmu.Lock()
			g.ctl.SetWriteDeadline(time.Now().Add(time.Second))
			g.ctl.Write(line)
			g.wmu.Unlock()
		}
	}
	select {
	case <-g.exited:
	case <-time.After(grace):
		g.cmd.Process.Kill()
		<-g.exited
		killed = true
	}
	if g.ctl != nil {
		g.ctl.Close()
	}
	if g.transcript != nil {
		g.transcript.Close()
	}
	return killed
}
