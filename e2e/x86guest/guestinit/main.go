// Command guestinit is /init of the x86_64 test guest (see package
// e2e/x86guest). It loads the modules listed in /etc/e2e/modules, mounts the
// host's root file system (a read-only virtio 9p share) with fresh /proc,
// /sys, /dev, /run and /tmp over it, copies the directories listed in
// /etc/e2e/copy into the guest's /tmp, runs the command of /etc/e2e/cmd in
// it, prints the exit marker and powers the guest off.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/e2e/x86guest/spec"
)

func main() {
	code := run()
	fmt.Printf("\n%s %d\n", spec.ExitMarker, code)
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}

func logf(format string, args ...any) {
	fmt.Printf("x86guest-init: "+format+"\n", args...)
}

func run() int {
	for _, m := range []struct{ src, dst, fstype string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fstype, 0, ""); err != nil && err != unix.EBUSY {
			logf("mount %s: %v", m.dst, err)
			return 120
		}
	}
	b, err := os.ReadFile(spec.Path)
	if err != nil {
		logf("%v", err)
		return 120
	}
	var c spec.Command
	if err := json.Unmarshal(b, &c); err != nil || len(c.Argv) == 0 {
		logf("bad /etc/e2e/cmd: %v", err)
		return 120
	}
	if err := loadModules("/etc/e2e/modules"); err != nil {
		logf("modules: %v", err)
		return 120
	}
	if err := enterHostRoot(c.Copy); err != nil {
		logf("root: %v", err)
		return 120
	}
	if err := loUp(); err != nil {
		logf("lo: %v", err)
		return 120
	}
	// This process is PID 1: it must reap orphans while the command runs.
	// The command is a child subreaper of its own tree anyway (go test's
	// harness waits for what it starts); here we only wait for it.
	cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "TMPDIR=/tmp"}, c.Env...)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		logf("start %v: %v", c.Argv, err)
		return 121
	}
	done := make(chan int, 1)
	go func() {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, 0, nil)
			if err == unix.ECHILD {
				return
			}
			if err != nil {
				continue
			}
			if pid == cmd.Process.Pid {
				if ws.Exited() {
					done <- ws.ExitStatus()
				} else {
					done <- 128 + int(ws.Signal())
				}
			}
		}
	}()
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	select {
	case code := <-done:
		return code
	case <-time.After(timeout):
		logf("command timed out after %v", timeout)
		unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		return 124
	}
}

// loadModules loads /lib/modules/NAME.ko for each NAME listed, in order
// (the host lists dependencies first).
func loadModules(list string) error {
	b, err := os.ReadFile(list)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, name := range strings.Fields(string(b)) {
		f, err := os.Open("/lib/modules/" + name + ".ko")
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && err != unix.EEXIST {
			return fmt.Errorf("finit_module %s: %w", name, err)
		}
	}
	return nil
}

// enterHostRoot mounts the host's root (9p tag "hostroot", read-only) on
// /host, gives it its own /proc, /sys, /dev, /run and /tmp (with the copies
// in it), and chroots into it.
func enterHostRoot(copies []spec.Copy) error {
	const root, tmp = "/host", "/newtmp"
	os.MkdirAll(root, 0o755)
	os.MkdirAll(tmp, 0o755)
	opts := "trans=virtio,version=9p2000.L,cache=loose,msize=512000"
	if err := unix.Mount("hostroot", root, "9p", unix.MS_RDONLY, opts); err != nil {
		return fmt.Errorf("mount the host's root (9p): %w", err)
	}
	if err := unix.Mount("tmpfs", tmp, "tmpfs", 0, "mode=1777"); err != nil {
		return fmt.Errorf("mount tmpfs: %w", err)
	}
	for _, c := range copies {
		begin := time.Now()
		to := filepath.Join(tmp, filepath.Clean("/"+c.To))
		if err := copyTree(filepath.Join(root, c.From), to); err != nil {
			return fmt.Errorf("copy %s: %w", c.From, err)
		}
		logf("copied %s to /tmp/%s in %v", c.From, c.To, time.Since(begin).Round(time.Millisecond))
	}
	if err := unix.Mount(tmp, root+"/tmp", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move /tmp into place: %w", err)
	}
	for _, m := range []struct{ src, dst, fstype, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", ""},
		{"devpts", "/dev/pts", "devpts", "newinstance,ptmxmode=0666"},
		{"tmpfs", "/dev/shm", "tmpfs", "mode=1777"},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", ""},
	} {
		os.MkdirAll(root+m.dst, 0o755) // under /dev: the read-only root has the others
		if err := unix.Mount(m.src, root+m.dst, m.fstype, 0, m.data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	// switch_root: the host's root becomes the root mount itself, so paths
	// the kernel prints (/proc/PID/fd links, mountinfo) have no /host prefix.
	if err := unix.Chdir(root); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move the host's root to /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return err
	}
	return unix.Chdir("/")
}

func loUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// copyTree copies the regular files, directories and symlinks below src to
// dst, keeping modes and modification times (the workload cache is keyed
// by contents, the files only need to be there).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, info.Mode().Perm())
		case info.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(t, to)
		case info.Mode().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, in); err != nil {
				out.Close()
				return err
			}
			if err := out.Close(); err != nil {
				return err
			}
			return os.Chtimes(to, info.ModTime(), info.ModTime())
		}
		return nil
	})
}
