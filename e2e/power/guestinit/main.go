package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/e2e/power/ctl"
)

type bootConfig struct {
	name     string
	ip       string
	script   string
	poweroff bool
}

func main() {
	cfg := bootConfig{name: "guest", script: "/etc/e2e/script"}
	if err := setupMounts(); err != nil {
		console("setup: %v", err)
	}
	if b, err := os.ReadFile("/proc/cmdline"); err == nil {
		for _, f := range strings.Fields(string(b)) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "e2e.name":
				cfg.name = v
			case "e2e.ip":
				cfg.ip = v
			case "e2e.script":
				cfg.script = v
			case "e2e.poweroff":
				cfg.poweroff = v == "1"
			}
		}
	}
	os.Setenv("PATH", "/bin:/usr/bin")
	go reapChildren()
	if err := loadModules("/etc/e2e/modules"); err != nil {
		console("modules: %v", err)
	}
	if err := setupNetwork(cfg.ip); err != nil {
		console("network: %v", err)
	}
	srv, err := serveControl("/dev/hvc1")
	if err != nil {
		console("control channel: %v", err)
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	fmt.Printf("%s guest=%s kernel=%s machine=%s pagesize=%d ip=%s\n", ctl.MarkerReady, cfg.name,
		unix.ByteSliceToString(uts.Release[:]), unix.ByteSliceToString(uts.Machine[:]), os.Getpagesize(), cfg.ip)
	if err := runScript(cfg.script); err != nil && !os.IsNotExist(err) {
		console("script %s: %v", cfg.script, err)
	}
	if cfg.poweroff || srv == nil {
		powerOff()
	}
	select {}
}

// console prints a diagnostic line on the console (fd 1 is /dev/console).
func console(format string, args ...any) {
	fmt.Printf("e2e-init: "+format+"\n", args...)
}

func setupMounts() error {
	mounts := []struct{ src, dst, fstype, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", ""},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
		{"tmpfs", "/tmp", "tmpfs", "mode=1777"},
	}
	var firstErr error
	for _, m := range mounts {
		if err := os.MkdirAll(m.dst, 0o755); err != nil && firstErr == nil {
			firstErr = err
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, 0, m.data); err != nil && err != unix.EBUSY && firstErr == nil {
			firstErr = fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	return firstErr
}

// loadModules loads /lib/modules/NAME.ko for each NAME listed, in order.
func loadModules(list string) error {
	b, err := os.ReadFile(list)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, name := range strings.Fields(string(b)) {
		path := "/lib/modules/" + name + ".ko"
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && err != unix.EEXIST {
			return fmt.Errorf("finit_module %s: %w", path, err)
		}
	}
	return nil
}

// runScript runs the boot script's commands one after the other.
func runScript(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			console("script: line %q has no command", line)
			continue
		}
		out, exit, err := runWait(f[1:], nil, "", nil, 10*time.Minute)
		os.Stdout.Write(out)
		result(f[0], exit, err)
	}
	return sc.Err()
}

// result prints the RESULT marker of a named command.
func result(name string, exit int, err error) {
	verdict := "PASS"
	if exit != 0 || err != nil {
		verdict = "FAIL"
	}
	detail := "exit=" + strconv.Itoa(exit)
	if err != nil {
		detail += " err=" + strconv.Quote(err.Error())
	}
	fmt.Printf("%s %s %s %s\n", ctl.MarkerResult, name, verdict, detail)
}

func powerOff() {
	fmt.Printf("%s\n", ctl.MarkerPowerOff)
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
