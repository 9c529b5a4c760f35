package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/e2e/power/ctl"
)

// commandTimeout bounds a foreground command run over the control channel.
const commandTimeout = 30 * time.Minute

// controlServer answers requests read from the control tty.
type controlServer struct {
	tty *os.File
	wmu sync.Mutex
}

// serveControl opens the control tty, puts it in raw mode and serves it.
func serveControl(path string) (*controlServer, error) {
	var f *os.File
	var err error
	for i := 0; i < 50; i++ { // devtmpfs may create the node a moment late
		if f, err = os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	if err := makeRaw(int(f.Fd())); err != nil {
		f.Close()
		return nil, fmt.Errorf("raw mode on %s: %w", path, err)
	}
	// Drop what arrived while the tty was still cooked (the host retries its
	// hello), and end any half-echoed line so the next reply starts clean.
	unix.IoctlSetInt(int(f.Fd()), unix.TCFLSH, unix.TCIFLUSH)
	f.Write([]byte("\n"))
	s := &controlServer{tty: f}
	go s.serve()
	return s, nil
}

func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

func (s *controlServer) serve() {
	r := bufio.NewReaderSize(s.tty, 1<<20)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			console("control channel: %v", err)
			time.Sleep(time.Second)
			if err == io.EOF {
				continue
			}
			return
		}
		req, err := ctl.DecodeRequest(line)
		if err != nil {
			continue // echo or line noise before raw mode
		}
		go s.handle(req)
	}
}

func (s *controlServer) send(r ctl.Reply) {
	b, err := ctl.Encode(r)
	if err != nil {
		console("encode reply: %v", err)
		return
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.tty.Write(b)
}

func (s *controlServer) handle(req ctl.Request) {
	final := ctl.Reply{ID: req.ID, Done: true}
	var runErr error
	switch {
	case strings.HasPrefix(req.Argv[0], "@"):
		out, err := builtin(req.Argv)
		if len(out) > 0 {
			s.send(ctl.Reply{ID: req.ID, Out: out})
		}
		if err != nil {
			final.Err, final.Exit, runErr = err.Error(), 1, err
		}
	case req.Background:
		p, err := start(req.Argv, req.Env, req.Dir, req.Stdin, false, req.LogFile)
		if err != nil {
			final.Err, final.Exit, runErr = err.Error(), -1, err
		} else {
			final.Pid = p.pid
			if req.Name != "" {
				go func() { result(req.Name, <-p.exit, nil) }()
			}
		}
		s.send(final)
		return
	default:
		p, err := start(req.Argv, req.Env, req.Dir, req.Stdin, true, "")
		if err != nil {
			final.Err, final.Exit, runErr = err.Error(), -1, err
			break
		}
		final.Pid = p.pid
		_, code, err := p.collect(commandTimeout, func(b []byte) { s.send(ctl.Reply{ID: req.ID, Out: b}) })
		final.Exit = code
		if err != nil {
			final.Err, runErr = err.Error(), err
		}
	}
	if req.Name != "" {
		result(req.Name, final.Exit, runErr)
	}
	s.send(final)
	if req.Argv[0] == ctl.BuiltinPowerOff {
		powerOff()
	}
}

// builtin runs one of the ctl.Builtin* commands.
func builtin(argv []string) ([]byte, error) {
	need := func(n int) error {
		if len(argv) != n+1 {
			return fmt.Errorf("%s wants %d arguments", argv[0], n)
		}
		return nil
	}
	switch argv[0] {
	case ctl.BuiltinHello:
		var uts unix.Utsname
		unix.Uname(&uts)
		return fmt.Appendf(nil, "hello %s %s %d\n", unix.ByteSliceToString(uts.Release[:]),
			unix.ByteSliceToString(uts.Machine[:]), os.Getpagesize()), nil
	case ctl.BuiltinPowerOff:
		return nil, nil
	case ctl.BuiltinCat:
		if err := need(1); err != nil {
			return nil, err
		}
		return os.ReadFile(argv[1])
	case ctl.BuiltinKill:
		if err := need(2); err != nil {
			return nil, err
		}
		pid, err1 := strconv.Atoi(argv[1])
		sig, err2 := strconv.Atoi(argv[2])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s: bad pid or signal", argv[0])
		}
		return nil, unix.Kill(pid, unix.Signal(sig))
	case ctl.BuiltinTCPServe:
		if err := need(1); err != nil {
			return nil, err
		}
		return tcpServe(argv[1])
	case ctl.BuiltinTCPSend:
		if err := need(2); err != nil {
			return nil, err
		}
		n, err := strconv.ParseInt(argv[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: bad byte count: %w", argv[0], err)
		}
		return tcpSend(argv[1], n)
	}
	return nil, fmt.Errorf("unknown builtin %s", argv[0])
}

func tcpServe(port string) ([]byte, error) {
	ln, err := net.Listen("tcp4", ":"+port)
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(2 * time.Minute))
	c, err := ln.Accept()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		return nil, fmt.Errorf("read after %d bytes: %w", n, err)
	}
	if _, err := fmt.Fprintf(c, "%d\n", n); err != nil {
		return nil, err
	}
	return fmt.Appendf(nil, "received %d bytes from %s\n", n, c.RemoteAddr()), nil
}

func tcpSend(addr string, n int64) ([]byte, error) {
	var c net.Conn
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err = net.DialTimeout("tcp4", addr, 5*time.Second)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	begin := time.Now()
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	var sent int64
	for sent < n {
		chunk := buf
		if rest := n - sent; rest < int64(len(chunk)) {
			chunk = chunk[:rest]
		}
		w, err := c.Write(chunk)
		sent += int64(w)
		if err != nil {
			return nil, fmt.Errorf("write after %d bytes: %w", sent, err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	ack, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("read count: %w", err)
	}
	got, err := strconv.ParseInt(strings.TrimSpace(ack), 10, 64)
	if err != nil || got != n {
		return nil, fmt.Errorf("peer counted %q bytes, sent %d", strings.TrimSpace(ack), n)
	}
	el := time.Since(begin)
	return fmt.Appendf(nil, "sent %d bytes to %s in %v (%.1f MB/s)\n", n, addr, el.Round(time.Millisecond),
		float64(n)/el.Seconds()/1e6), nil
}
