package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// As PID 1, /init reaps every child, including orphans reparented to it. One
// goroutine owns wait4(-1); commands started here collect their status from
// it by pid, so nothing else may call wait.
var reaper = struct {
	sync.Mutex
	waiting map[int]chan int // pid -> receives the exit code
	early   map[int]int      // statuses of pids nobody waited for yet
}{waiting: map[int]chan int{}, early: map[int]int{}}

func reapChildren() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.ECHILD {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err != nil || pid <= 0 {
			continue
		}
		code := ws.ExitStatus()
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		reaper.Lock()
		if ch, ok := reaper.waiting[pid]; ok {
			delete(reaper.waiting, pid)
			ch <- code
		} else {
			reaper.early[pid] = code
		}
		reaper.Unlock()
	}
}

// exitOf returns a channel that receives pid's exit code.
func exitOf(pid int) <-chan int {
	ch := make(chan int, 1)
	reaper.Lock()
	defer reaper.Unlock()
	if code, ok := reaper.early[pid]; ok {
		delete(reaper.early, pid)
		ch <- code
		return ch
	}
	reaper.waiting[pid] = ch
	return ch
}

// started is a running command: its pid, its exit channel and, when output
// is captured, the read end of its output pipe.
type started struct {
	pid  int
	exit <-chan int
	out  *os.File
}

// start runs argv with stdout and stderr going to a pipe (capture), to
// logFile, or nowhere.
func start(argv, env []string, dir string, stdin []byte, capture bool, logFile string) (*started, error) {
	if len(argv) == 0 {
		return nil, errors.New("empty argv")
	}
	if len(env) == 0 {
		env = []string{"PATH=/bin:/usr/bin", "HOME=/"}
	}
	if dir == "" {
		dir = "/"
	}
	var in *os.File
	if len(stdin) > 0 {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		go func() { w.Write(stdin); w.Close() }()
		in = r
		defer r.Close()
	} else {
		null, err := os.Open("/dev/null")
		if err != nil {
			return nil, err
		}
		in = null
		defer null.Close()
	}
	var outR, outW *os.File
	switch {
	case capture:
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		outR, outW = r, w
	case logFile != "":
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		outW = f
	default:
		f, err := os.OpenFile("/dev/null", os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		outW = f
	}
	defer outW.Close()
	path := argv[0]
	if lp, err := lookPath(path); err == nil {
		path = lp
	}
	// The reaper must not see the child before it is registered: hold its
	// lock across the fork so an immediate exit lands in early.
	reaper.Lock()
	p, err := os.StartProcess(path, argv, &os.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []*os.File{in, outW, outW},
		Sys:   &unix.SysProcAttr{Setsid: true},
	})
	reaper.Unlock()
	if err != nil {
		if outR != nil {
			outR.Close()
		}
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	pid := p.Pid
	p.Release()
	return &started{pid: pid, exit: exitOf(pid), out: outR}, nil
}

func lookPath(name string) (string, error) {
	if len(name) > 0 && name[0] == '/' {
		return name, nil
	}
	for _, d := range []string{"/bin", "/usr/bin", "/"} {
		p := d + "/" + name
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}

// runWait runs argv to completion (or timeout, then SIGKILL) and returns its
// combined output and exit code.
func runWait(argv, env []string, dir string, stdin []byte, timeout time.Duration) ([]byte, int, error) {
	s, err := start(argv, env, dir, stdin, true, "")
	if err != nil {
		return nil, -1, err
	}
	return s.collect(timeout, nil)
}

// collect streams the output to chunk (when set) or gathers it, and returns
// the exit code. Output written after the exit by leftover grandchildren is
// read for at most 1 s more.
func (s *started) collect(timeout time.Duration, chunk func([]byte)) ([]byte, int, error) {
	var (
		buf  []byte
		mu   sync.Mutex
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		b := make([]byte, 32<<10)
		for {
			n, err := s.out.Read(b)
			if n > 0 {
				if chunk != nil {
					chunk(append([]byte(nil), b[:n]...))
				} else {
					mu.Lock()
					buf = append(buf, b[:n]...)
					mu.Unlock()
				}
			}
			if err != nil {
				if err != io.EOF {
					console("read output of %d: %v", s.pid, err)
				}
				return
			}
		}
	}()
	var code int
	var rerr error
	select {
	case code = <-s.exit:
	case <-time.After(timeout):
		unix.Kill(s.pid, unix.SIGKILL)
		code = <-s.exit
		rerr = fmt.Errorf("timed out after %v, killed", timeout)
	}
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	s.out.Close()
	<-done
	mu.Lock()
	defer mu.Unlock()
	return buf, code, rerr
}
