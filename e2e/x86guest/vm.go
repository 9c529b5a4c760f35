package x86guest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/migrated/migrated/e2e/power"
	"github.com/migrated/migrated/e2e/x86guest/spec"
)

// Config is one guest run.
type Config struct {
	// Command runs in the guest, in the host's root file system.
	Command spec.Command
	// CPUs and MemoryMiB of the guest; defaults 2 and 3072.
	CPUs      int
	MemoryMiB int
	// WorkDir keeps the initramfs and the console log; default a new
	// temporary directory, removed after a run that exited 0.
	WorkDir string
	// Logf receives progress lines and every console line as it comes.
	Logf func(format string, args ...any)
}

// Result is how a guest run ended.
type Result struct {
	// Exit is the command's exit status in the guest (128+N for signal N).
	Exit    int
	Console []byte
	Kernel  string
	// Boot is from QEMU's start to the command's start; Total to power-off.
	Boot, Total time.Duration
}

// ErrNoExit is returned when the guest stopped without the exit marker
// (a kernel panic, an /init failure, QEMU killed).
var ErrNoExit = errors.New("x86guest: the guest stopped without reporting the command's exit")

// startMarker is printed by the kernel when /init starts: the boot is done.
const startMarker = "x86guest-init: "

// Run boots an x86_64 guest under QEMU (TCG) with Debian's kernel, runs
// cfg.Command in it and returns its exit status. The guest has no network
// device; the host's root is shared read-only. QEMU is killed if ctx ends.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.CPUs == 0 {
		cfg.CPUs = 2
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = 3072
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return nil, fmt.Errorf("x86guest: qemu-system-x86_64 not installed (Debian package qemu-system-x86): %w", err)
	}
	kern, err := EnsureKernel(ctx, logf)
	if err != nil {
		return nil, err
	}
	work := cfg.WorkDir
	own := work == ""
	if own {
		if work, err = os.MkdirTemp("", "migrated-x86guest-"); err != nil {
			return nil, err
		}
	}
	initBin := filepath.Join(work, "init")
	if err := buildInit(ctx, initBin); err != nil {
		return nil, err
	}
	img := filepath.Join(work, "initramfs.cpio")
	if err := writeInitramfs(img, initBin, kern, cfg.Command); err != nil {
		return nil, err
	}
	args := []string{
		"-M", "q35", "-accel", "tcg,thread=multi", "-cpu", "max",
		"-smp", strconv.Itoa(cfg.CPUs), "-m", strconv.Itoa(cfg.MemoryMiB),
		"-nographic", "-nodefaults", "-no-reboot", "-nic", "none",
		"-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
		"-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
		"-kernel", kern.Vmlinuz, "-initrd", img,
		"-append", "console=ttyS0 panic=-1 quiet loglevel=4",
	}
	res := &Result{Kernel: kern.Package, Exit: -1}
	logf("booting %s (%d CPUs, %d MiB), work directory %s", kern.Package, cfg.CPUs, cfg.MemoryMiB, work)
	cmd := exec.CommandContext(ctx, qemu, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 10 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// QEMU reads its stdio console: give it an empty pipe that stays open.
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer stdinW.Close()
	cmd.Stdin = stdinR
	consoleLog, err := os.Create(filepath.Join(work, "console"))
	if err != nil {
		return nil, err
	}
	defer consoleLog.Close()
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		stdinR.Close()
		return nil, fmt.Errorf("x86guest: start QEMU: %w", err)
	}
	stdinR.Close()
	var console bytes.Buffer
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		console.WriteString(line + "\n")
		consoleLog.WriteString(line + "\n")
		if res.Boot == 0 && strings.Contains(line, startMarker) {
			res.Boot = time.Since(begin)
		}
		if rest, ok := strings.CutPrefix(line, spec.ExitMarker+" "); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(rest)); err == nil {
				res.Exit = n
			}
			continue
		}
		logf("guest: %s", line)
	}
	werr := cmd.Wait()
	res.Total = time.Since(begin)
	res.Console = console.Bytes()
	if res.Exit < 0 {
		return res, fmt.Errorf("%w (QEMU: %v; console kept in %s)\n%s", ErrNoExit, werr, work, stderr.Bytes())
	}
	if own && res.Exit == 0 {
		os.RemoveAll(work)
	}
	return res, nil
}

// buildInit cross-builds nothing: the guest is amd64 like this machine, so
// /init is a static build of guestinit for the host's own architecture.
func buildInit(ctx context.Context, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./e2e/x86guest/guestinit")
	cmd.Dir = power.ModuleRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("x86guest: build /init: %w\n%s", err, b)
	}
	return nil
}

func writeInitramfs(path, initBin string, kern *Kernel, c spec.Command) error {
	r := power.NewInitramfs()
	init, err := os.ReadFile(initBin)
	if err != nil {
		return err
	}
	cmd, err := json.Marshal(c)
	if err != nil {
		return err
	}
	steps := []error{
		r.AddFile("init", 0o755, init),
		r.AddCharDev("dev/console", 0o600, 5, 1),
		r.AddCharDev("dev/null", 0o666, 1, 3),
		r.AddFile(strings.TrimPrefix(spec.Path, "/"), 0o644, cmd),
	}
	var names []string
	for _, m := range kern.Modules {
		b, err := os.ReadFile(m)
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(filepath.Base(m), ".ko")
		names = append(names, name)
		steps = append(steps, r.AddFile("lib/modules/"+name+".ko", 0o644, b))
	}
	steps = append(steps, r.AddFile("etc/e2e/modules", 0o644, []byte(strings.Join(names, "\n")+"\n")))
	if err := errors.Join(steps...); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := r.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
