package main

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/agent"
	"github.com/migrated/migrated/compat"
)

// kconfig reads CONFIG_name from /proc/config.gz; ok is false when the
// kernel does not expose its configuration.
func kconfig(name string) (string, bool) {
	f, err := os.Open("/proc/config.gz")
	if err != nil {
		return "", false
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return "", false
	}
	sc := bufio.NewScanner(z)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CONFIG_"+name+"="); ok {
			return v, true
		}
	}
	return "", true
}

func checkStatus(r agent.DoctorReport, name string) string {
	for _, c := range r.Checks {
		if c.Name == name {
			return c.Status
		}
	}
	return "absent"
}

// TestDoctorAcceptance runs `migrated doctor --json` and checks its answers
// against sources independent of the probe: the kernel configuration, a
// 32-bit program built by gcc, setrlimit, and CapEff read here.
func TestDoctorAcceptance(t *testing.T) {
	stdout, stderr, code := runCLI(t, nil, "doctor", "--json")
	var r agent.DoctorReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("doctor --json (exit %d): %v\n%s%s", code, err, stdout, stderr)
	}
	if code != 0 && r.OK() || code == 0 && !r.OK() {
		t.Errorf("exit %d with report ok=%v", code, r.OK())
	}
	h := r.Caps
	has := func(tr string) bool {
		for _, x := range h.DirtyTrackers {
			if x == tr {
				return true
			}
		}
		return false
	}

	t.Run("soft-dirty", func(t *testing.T) {
		v, ok := kconfig("MEM_SOFT_DIRTY")
		if !ok {
			t.Skip("no /proc/config.gz")
		}
		if has(compat.TrackerSoftDirty) != (v == "y") || (checkStatus(r, "dirty tracking: soft-dirty") == agent.CheckOK) != (v == "y") {
			t.Errorf("soft-dirty %v, CONFIG_MEM_SOFT_DIRTY=%q", has(compat.TrackerSoftDirty), v)
		}
	})
	t.Run("uffd-wp", func(t *testing.T) {
		wp, ok := kconfig("HAVE_ARCH_USERFAULTFD_WP")
		uffd, _ := kconfig("USERFAULTFD")
		if !ok {
			t.Skip("no /proc/config.gz")
		}
		kv, err := compat.ParseKernelRelease(h.KernelRelease)
		if err != nil {
			t.Fatal(err)
		}
		// PAGEMAP_SCAN and UFFD_FEATURE_WP_ASYNC arrived in Linux 6.7.
		want := wp == "y" && uffd == "y" && kv.AtLeast(6, 7)
		if has(compat.TrackerUffdWP) != want {
			t.Errorf("uffd-wp %v; config WP=%q USERFAULTFD=%q kernel %v", has(compat.TrackerUffdWP), wp, uffd, kv)
		}
	})
	t.Run("32-bit", func(t *testing.T) {
		gcc, err := exec.LookPath("gcc")
		if err != nil {
			t.Skip("no gcc (package gcc-multilib) to build an independent 32-bit program")
		}
		dir := t.TempDir()
		src := filepath.Join(dir, "t.c")
		os.WriteFile(src, []byte("int main(void){return 7;}\n"), 0o644)
		if out, err := exec.Command(gcc, "-m32", "-static", "-o", filepath.Join(dir, "t32"), src).CombinedOutput(); err != nil {
			t.Skipf("gcc -m32 cannot build (package gcc-multilib): %v\n%s", err, out)
		}
		err = exec.Command(filepath.Join(dir, "t32")).Run()
		var ee *exec.ExitError
		runs := errors.As(err, &ee) && ee.ExitCode() == 7
		if h.Compat32 != runs || (checkStatus(r, "32-bit tasks") == agent.CheckOK) != runs {
			t.Errorf("doctor says 32-bit %v; a gcc -m32 program: %v", h.Compat32, err)
		}
		t.Logf("32-bit tasks run here: %v (%v)", runs, err)
	})
	t.Run("CAP_SYS_RESOURCE", func(t *testing.T) {
		b, _ := os.ReadFile("/proc/self/status")
		var capEff uint64
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
				capEff, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			}
		}
		want := capEff&(1<<24) != 0
		var lim unix.Rlimit
		unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
		if lim.Max != unix.RLIM_INFINITY {
			up := unix.Rlimit{Cur: lim.Cur, Max: lim.Max + 1}
			err := unix.Setrlimit(unix.RLIMIT_NOFILE, &up)
			if err == nil {
				unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
			}
			if (err == nil) != want {
				t.Fatalf("CapEff says CAP_SYS_RESOURCE=%v but raising a hard limit: %v", want, err)
			}
		}
		if h.CapSysResource != want || (checkStatus(r, "CAP_SYS_RESOURCE") == agent.CheckOK) != want {
			t.Errorf("doctor says CAP_SYS_RESOURCE %v, want %v", h.CapSysResource, want)
		}
	})
	t.Run("page size and vdso", func(t *testing.T) {
		if h.PageSize != uint64(os.Getpagesize()) || h.VDSO == nil || len(h.VDSO.Sha256) != 32 {
			t.Errorf("page size %d, vdso %v", h.PageSize, h.VDSO)
		}
	})

	// The text form lists the same checks.
	text, _, _ := runCLI(t, nil, "doctor")
	for _, c := range r.Checks {
		if !strings.Contains(text, c.Name) {
			t.Errorf("text output lacks %q:\n%s", c.Name, text)
		}
	}
}

// TestCLIErrors: clear errors and exit codes without an agent or with bad
// arguments.
func TestCLIErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	tests := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"members, no agent", nil, []string{"--control", missing, "members"}, exitAgentNotRunning, missing},
		{"members, no agent via env", []string{agent.ControlEnv + "=" + missing}, []string{"members", "--json"}, exitAgentNotRunning, missing},
		{"unknown flag", nil, []string{"members", "--nope"}, exitUsage, "--nope"},
		{"extra argument", nil, []string{"members", "x"}, exitUsage, "unknown command"},
		{"agent without bind", nil, []string{"agent", "--name", "x", "--insecure", "--control", missing}, exitFailure, "--bind"},
		{"agent without secret", nil, []string{"agent", "--name", "x", "--bind", "127.0.0.1:1", "--control", missing}, exitFailure, "keygen"},
	}
	for _, tt := range tests {
		_, stderr, code := runCLI(t, tt.env, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d mentioning %q", tt.name, code, stderr, tt.code, tt.want)
		}
	}
	// keygen writes what --secret-file reads, and refuses to overwrite.
	out, _, code := runCLI(t, nil, "keygen")
	if code != 0 || len(strings.TrimSpace(out)) != 44 {
		t.Errorf("keygen: exit %d %q", code, out)
	}
	path := filepath.Join(t.TempDir(), "k")
	os.WriteFile(path, []byte("x"), 0o600)
	if _, _, code := runCLI(t, nil, "keygen", "-o", path); code == 0 {
		t.Error("keygen overwrote a file")
	}
	// version works without an agent and says so.
	out, _, code = runCLI(t, nil, "--control", missing, "version")
	if code != 0 || !strings.Contains(out, "not running on "+missing) {
		t.Errorf("version: exit %d %q", code, out)
	}
	// cobra's completion command.
	out, _, code = runCLI(t, nil, "completion", "bash")
	if code != 0 || !strings.Contains(out, "migrated") {
		t.Errorf("completion bash: exit %d", code)
	}
}
