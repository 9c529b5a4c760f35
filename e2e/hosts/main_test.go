package hosts_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/migrated/migrated/e2e/hosts"
)

func TestMain(m *testing.M) {
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > 2 {
			syscall.Syscall(syscall.SYS_FCNTL, uintptr(n), syscall.F_SETFD, syscall.FD_CLOEXEC)
		}
	}
	os.Exit(m.Run())
}

var builtBin string

// migratedBin builds cmd/migrated once per test binary, unless
// $MIGRATED_BIN names one already built (e2e/x86guest runs this test binary
// in a guest, where building would be slow).
func migratedBin(t testing.TB) string {
	t.Helper()
	if builtBin != "" {
		return builtBin
	}
	if p := os.Getenv("MIGRATED_BIN"); p != "" {
		builtBin = p
		return p
	}
	dir, err := os.MkdirTemp("", "migrated-bin-")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "migrated")
	if b, err := exec.Command("go", "build", "-o", out, "github.com/migrated/migrated/cmd/migrated").CombinedOutput(); err != nil {
		t.Fatalf("build migrated: %v\n%s", err, b)
	}
	builtBin = out
	return out
}

func setup(t *testing.T, o hosts.Options) (*hosts.Env, context.Context) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: namespaces, ptrace, clone3 set_tid")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel)
	o.Bin = migratedBin(t)
	env, err := hosts.Setup(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, a := range env.Agents {
				if b, err := os.ReadFile(a.Log); err == nil {
					t.Logf("agent log %s:\n%s", a.Log, tail(b, 3000))
				}
			}
		}
		env.Close()
	})
	return env, ctx
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
