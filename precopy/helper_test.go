package precopy

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	dirtierOnce sync.Once
	dirtierPath string
	dirtierErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if dirtierPath != "" {
		os.RemoveAll(filepath.Dir(dirtierPath))
	}
	os.Exit(code)
}

// needRoot skips a test that traces other processes.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (ptrace, pidfd_getfd and /proc/PID/pagemap of another process)")
	}
}

// buildDirtier compiles testdata/dirtier.c once per test binary.
func buildDirtier(t testing.TB) string {
	t.Helper()
	dirtierOnce.Do(func() {
		gcc, err := exec.LookPath("gcc")
		if err != nil {
			dirtierErr = fmt.Errorf("gcc not found: %w", err)
			return
		}
		dir, err := os.MkdirTemp("", "precopy-dirtier")
		if err != nil {
			dirtierErr = err
			return
		}
		if err := os.Chmod(dir, 0o755); err != nil { // other uids run it too
			dirtierErr = err
			return
		}
		out := filepath.Join(dir, "dirtier")
		b, err := exec.Command(gcc, "-O2", "-pthread", "-Wall", "-o", out, "testdata/dirtier.c").CombinedOutput()
		if err != nil {
			dirtierErr = fmt.Errorf("gcc: %v: %s", err, b)
			return
		}
		dirtierPath = out
	})
	if dirtierErr != nil {
		if strings.Contains(dirtierErr.Error(), "gcc not found") {
			t.Skipf("the test task is C: %v (Debian package gcc)", dirtierErr)
		}
		t.Fatal(dirtierErr)
	}
	return dirtierPath
}

// dirtier is a running testdata/dirtier.c.
type dirtier struct {
	t        testing.TB
	cmd      *exec.Cmd
	in       io.WriteCloser
	out      *bufio.Reader
	PID      int
	Base     uint64
	Pages    int
	PageSize uint64
}

func startDirtier(t testing.TB, pages int, mode string) *dirtier {
	t.Helper()
	return startDirtierAs(t, pages, mode, nil)
}

// startDirtierAs starts the dirtier with the given credentials (nil: ours).
func startDirtierAs(t testing.TB, pages int, mode string, cred *syscall.Credential) *dirtier {
	t.Helper()
	path := buildDirtier(t)
	args := strings.Fields(mode) // "all", "mix", "all seccomp"
	cmd := exec.Command(path, append([]string{strconv.Itoa(pages)}, args...)...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &dirtier{t: t, cmd: cmd, in: in, out: bufio.NewReader(outp), PID: cmd.Process.Pid}
	t.Cleanup(d.kill)
	// The first answer comes once the region is filled.
	f := strings.Fields(d.do("base"))
	if len(f) != 3 {
		t.Fatalf("dirtier base: %q", f)
	}
	d.Base, _ = strconv.ParseUint(f[0], 16, 64)
	d.Pages, _ = strconv.Atoi(f[1])
	d.PageSize, _ = strconv.ParseUint(f[2], 10, 64)
	return d
}

// do sends one command and returns the answer line (60 s at most: the
// machine may be loaded, and filling 1 GiB is slow then).
func (d *dirtier) do(format string, args ...any) string {
	d.t.Helper()
	if _, err := fmt.Fprintf(d.in, format+"\n", args...); err != nil {
		d.t.Fatalf("dirtier %d: %v", d.PID, err)
	}
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := d.out.ReadString('\n')
		ch <- res{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			d.t.Fatalf("dirtier %d: %q: %v", d.PID, format, r.err)
		}
		return r.s
	case <-time.After(60 * time.Second):
		d.t.Fatalf("dirtier %d: no answer to %q", d.PID, format)
		return ""
	}
}

func (d *dirtier) kill() {
	if d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Kill()
	d.cmd.Wait()
}

// fds lists the task's open file descriptors.
func fdsOf(t testing.TB, pid int) []string {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		out = append(out, e.Name()+"->"+l)
	}
	return out
}

// pagesIn lists the page indices of region [base, base+n pages) covered by rs.
func pagesIn(rs Ranges, base uint64, n int, pageSize uint64) []uint32 {
	return rs.pageIndices(base, base+uint64(n)*pageSize, pageSize)
}
