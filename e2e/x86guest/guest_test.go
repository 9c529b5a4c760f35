package x86guest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migrated/migrated/e2e/x86guest/spec"
)

func needGuest(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (QEMU shares the host's root file system)")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("needs qemu-system-x86_64 (Debian package qemu-system-x86; make deps installs it)")
	}
}

// TestGuestRunsI386 boots the guest and runs, in the host's root file
// system, an i386 program built here: the guest's kernel executes what
// this machine's does not.
func TestGuestRunsI386(t *testing.T) {
	needGuest(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "hello.c")
	os.WriteFile(src, []byte("#include <stdio.h>\nint main(void){printf(\"i386 says %zu\\n\", sizeof(void*));return 7;}\n"), 0o644)
	if b, err := exec.Command("gcc", "-m32", "-static", "-o", filepath.Join(dir, "hello"), src).CombinedOutput(); err != nil {
		t.Skipf("gcc -m32 -static cannot build here: %v\n%s", err, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Logf: t.Logf, Command: spec.Command{
		Argv: []string{"/bin/sh", "-c", "uname -m; /tmp/c/hello"},
		Copy: []spec.Copy{{From: dir, To: "c"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel %s, boot %v, total %v", res.Kernel, res.Boot.Round(time.Millisecond), res.Total.Round(time.Millisecond))
	if res.Exit != 7 || !strings.Contains(string(res.Console), "i386 says 4") {
		t.Fatalf("exit %d, console:\n%s", res.Exit, res.Console)
	}
}

// TestScript runs $MIGRATED_X86GUEST_SCRIPT (sh) in the guest, with
// $MIGRATED_X86GUEST_COPY (a host directory) copied to /tmp/copy: a tool for
// looking into i386 behaviour by hand. It skips without the variable.
func TestScript(t *testing.T) {
	script := os.Getenv("MIGRATED_X86GUEST_SCRIPT")
	if script == "" {
		t.Skip("set MIGRATED_X86GUEST_SCRIPT to a shell script to run in the guest")
	}
	needGuest(t)
	c := spec.Command{Argv: []string{"/bin/sh", "-c", script},
		Env: []string{"PATH=" + os.Getenv("PATH")}}
	if d := os.Getenv("MIGRATED_X86GUEST_COPY"); d != "" {
		c.Copy = []spec.Copy{{From: d, To: "copy"}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Logf: t.Logf, Command: c})
	if err != nil {
		t.Fatal(err)
	}
	if res.Exit != 0 {
		t.Errorf("exit %d", res.Exit)
	}
}
