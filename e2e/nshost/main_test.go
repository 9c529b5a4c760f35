package nshost_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/migrated/migrated/e2e/nshost"
	"golang.org/x/sys/unix"
)

// helperEnv switches the test binary into one of the small programs the
// tests run inside the hosts (the test binary is on the shared file system).
const helperEnv = "NSHOST_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// Every helper ends by itself within helperLifetime.
const helperLifetime = 60 * time.Second

func runHelper(mode string, args []string) int {
	time.AfterFunc(helperLifetime, func() { os.Exit(3) })
	var err error
	switch mode {
	case "echo-server": // ADDR: echo every connection; "ready" once listening
		err = echoServer(args[0])
	case "dial": // ADDR MSG: send MSG, print what comes back
		err = dialEcho(args[0], args[1])
	case "unix-listen": // PATH: listen on a unix socket until SIGTERM
		err = unixListen(args[0])
	case "seize": // PID: ptrace-seize, interrupt and release a process
		err = seize(args[0])
	case "harness": // DIR: build two hosts, print what lives, wait to be killed
		err = harness(args[0])
	default:
		err = fmt.Errorf("unknown helper %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

func echoServer(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.Copy(c, c)
		}()
	}
}

func dialEcho(addr, msg string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	fmt.Print(line)
	return nil
}

func unixListen(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	fmt.Println("listening on", path)
	<-term
	fmt.Println("terminated")
	return ln.Close()
}

// harness builds a cluster and never closes it: the test kills it, as a
// crashed test run.
func harness(dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := nshost.New(ctx, nshost.Config{Hosts: 2, Dir: dir})
	if err != nil {
		return err
	}
	for _, h := range c.Hosts {
		cmd := h.Command(context.Background(), "sleep", "60")
		if err := cmd.Start(); err != nil {
			return err
		}
		fmt.Println("netns", h.NetNS)
		fmt.Println("pid", h.InitPID())
		fmt.Println("pid", cmd.Process.RootPID)
	}
	fmt.Println("ready")
	select {}
}

// seize does what an agent does first to a task it moves: seize it with
// ptrace, stop it, and let it go.
func seize(arg string) error {
	pid, err := strconv.Atoi(arg)
	if err != nil {
		return err
	}
	runtime.LockOSThread() // every ptrace request from one thread
	if err := unix.PtraceSeize(pid); err != nil {
		return fmt.Errorf("seize %d: %w", pid, err)
	}
	if err := unix.PtraceInterrupt(pid); err != nil {
		return fmt.Errorf("interrupt %d: %w", pid, err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil || !ws.Stopped() {
		return fmt.Errorf("wait for the stop of %d: %v, status %#x", pid, err, ws)
	}
	if err := unix.PtraceDetach(pid); err != nil {
		return fmt.Errorf("detach %d: %w", pid, err)
	}
	fmt.Println("seized", pid)
	return nil
}
