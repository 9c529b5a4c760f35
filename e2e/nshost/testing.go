package nshost

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// NewForTest builds a cluster of n hosts for a test and closes it when the
// test ends. It skips the test with -short and when it cannot run here (not
// root, no ip command). When the test fails, it logs the end of every log file of the
// cluster (host inits, daemons) before they are removed.
func NewForTest(t testing.TB, n int) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("namespace hosts are end-to-end: skipped with -short")
	}
	if reason := Unavailable(); reason != "" {
		t.Skip(reason)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := New(ctx, Config{Hosts: n, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("build %d namespace hosts: %v", n, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(c.Dir(), "*", "*.log"))
			for _, l := range logs {
				t.Logf("--- %s\n%s", l, tail(l, 30))
			}
		}
		if err := c.Close(); err != nil {
			t.Errorf("close namespace hosts: %v", err)
		}
	})
	return c
}

// Unavailable says why namespace hosts cannot be built here, or "" when they can.
func Unavailable() string {
	if os.Geteuid() != 0 {
		return "namespace hosts need root (network, PID and mount namespaces, veth)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "namespace hosts need the ip command (Debian package iproute2)"
	}
	return ""
}
