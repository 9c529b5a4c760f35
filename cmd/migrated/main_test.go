package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/migrated/migrated/agent"
)

// The acceptance tests run the real binary, built once per test run, and
// talk to real agents through their real control sockets.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func migratedBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "migrated-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "migrated")
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		out, err := exec.Command(goTool, "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// run runs the binary to completion (bounded) and returns stdout, stderr
// and the exit code.
func runCLI(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, migratedBin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("migrated %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), 0
}

// runJSON runs the binary and decodes its stdout.
func runCLIJSON(t *testing.T, out any, args ...string) {
	t.Helper()
	stdout, stderr, code := runCLI(t, nil, args...)
	if code != 0 {
		t.Fatalf("migrated %v: exit %d: %s", args, code, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), out); err != nil {
		t.Fatalf("migrated %v: %v\n%s", args, err, stdout)
	}
}

// agentProc is a `migrated agent` process.
type agentProc struct {
	name    string
	control string
	gossip  string
	quic    string
	cmd     *exec.Cmd
	stderr  *bytes.Buffer
	done    chan struct{}
	err     error
}

// freePorts returns a port free for TCP and UDP on ip (gossip) and another
// free for UDP (QUIC).
func freeGossipPorts(t *testing.T, ip string) (int, int) {
	t.Helper()
	for i := 0; i < 50; i++ {
		tl, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := tl.Addr().(*net.TCPAddr).Port
		ul, err := net.ListenPacket("udp", fmt.Sprintf("%s:%d", ip, port))
		if err != nil {
			tl.Close()
			continue
		}
		ql, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatal(err)
		}
		quic := ql.LocalAddr().(*net.UDPAddr).Port
		tl.Close()
		ul.Close()
		ql.Close()
		return port, quic
	}
	t.Fatal("no free port pair")
	return 0, 0
}

// startAgent starts `migrated agent` and waits until its control socket
// answers.
func startAgentProc(t *testing.T, dir, name, ip string, extra ...string) *agentProc {
	t.Helper()
	gport, qport := freeGossipPorts(t, ip)
	p := &agentProc{
		name:    name,
		control: filepath.Join(dir, name+".sock"),
		gossip:  fmt.Sprintf("%s:%d", ip, gport),
		quic:    fmt.Sprintf("%s:%d", ip, qport),
	}
	args := append([]string{"agent", "--name", name, "--bind", p.gossip, "--quic-port", fmt.Sprint(qport),
		"--control", p.control, "--gossip", "local", "--refresh", "500ms", "--log-level", "debug"}, extra...)
	return p.start(t, args...)
}

// start runs the binary with args and waits until p.control answers.
func (p *agentProc) start(t *testing.T, args ...string) *agentProc {
	t.Helper()
	p.stderr = &bytes.Buffer{}
	p.done = make(chan struct{})
	p.cmd = exec.Command(migratedBin(t), args...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("agent %s stderr:\n%s", p.name, p.stderr)
		}
	})
	c := agent.NewClient(p.control)
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("agent %s exited: %v\n%s", p.name, p.err, p.stderr)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Get(ctx, "/v1/version", nil)
		cancel()
		if err == nil {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %s not ready: %v\n%s", p.name, err, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends sig and waits (bounded) for the agent to exit.
func (p *agentProc) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return p.err
	case <-time.After(15 * time.Second):
		t.Fatalf("agent %s ignored %v", p.name, sig)
		return nil
	}
}

// worldDir is a temporary directory every uid can enter.
func sharedTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "migrated-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	return dir
}
