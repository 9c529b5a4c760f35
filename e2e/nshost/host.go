package nshost

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Dir is the host's work directory on the shared file system.
func (h *Host) Dir() string { return h.dir }

// TmpDir is the host's temporary directory, the TMPDIR of its commands.
func (h *Host) TmpDir() string { return filepath.Join(h.dir, "tmp") }

// FirstPID is where the host started handing out PIDs: host i (from 0)
// starts at (i+1)*pid_max/(MaxHosts+1), so that the PIDs of different hosts
// do not collide (3640 apart with this machine's pid_max of 32768; below the
// first, only the first threads of the inits). On real machines, a moved
// task's PIDs are almost always free on the destination; hosts that all
// counted from 2 would collide all the time. Cmd.WantPID takes a given PID
// on purpose.
func (h *Host) FirstPID() int { return h.firstPID }

// InitPID is the PID of the host's init in the harness's PID namespace.
func (h *Host) InitPID() int { return h.initPID }

// Path turns a path inside the host into one the harness can open: it goes
// through the init's /proc/PID/root, so /run, /proc and /dev/shm are the host's.
// Valid while the host is alive: afterwards the init's PID may be reused.
func (h *Host) Path(p string) string {
	return fmt.Sprintf("/proc/%d/root%s", h.initPID, filepath.Clean("/"+p))
}

// Alive reports whether the host's init still runs.
func (h *Host) Alive() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.dead
}

// PIDs lists the processes of the host by their PID inside the host, the
// init (1) included.
func (h *Host) PIDs() ([]int, error) {
	if !h.Alive() {
		return nil, ErrHostDown
	}
	return allPIDs(h.Path("/proc"))
}

// HasPID reports whether the PID number is in use in the host: by a
// process, a zombie or a thread (a thread's TID is a PID too, and clone3
// with set_tid cannot take it either).
func (h *Host) HasPID(pid int) bool {
	if !h.Alive() {
		return false
	}
	_, err := os.Stat(h.Path(fmt.Sprintf("/proc/%d", pid)))
	return err == nil
}

// RootPID returns the PID, in the harness's namespace, of the process that
// is pid inside the host (also when that process is in a PID namespace
// nested in the host's). os.ErrNotExist: no such process.
func (h *Host) RootPID(pid int) (int, error) {
	if !h.Alive() {
		return 0, ErrHostDown
	}
	if pid == 1 {
		return h.initPID, nil
	}
	pids, err := allPIDs("/proc")
	if err != nil {
		return 0, err
	}
	for _, rp := range pids {
		ns, err := NSpid(rp)
		if err != nil || len(ns) < 2 || ns[1] != pid {
			continue
		}
		if ok, err := h.holdsPIDNS(rp); err == nil && ok {
			return rp, nil
		}
	}
	return 0, fmt.Errorf("nshost: pid %d in host %s: %w", pid, h.Name, os.ErrNotExist)
}

// holdsPIDNS reports whether process rp (harness namespace) is in the host's
// PID namespace or in one nested in it.
func (h *Host) holdsPIDNS(rp int) (bool, error) {
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/pid", rp), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	for range 32 { // the kernel nests PID namespaces at most 32 deep
		var st unix.Stat_t
		err := unix.Fstat(fd, &st)
		if err == nil && st.Ino == h.pidNS {
			unix.Close(fd)
			return true, nil
		}
		parent, perr := unix.IoctlRetInt(fd, unix.NS_GET_PARENT)
		unix.Close(fd)
		if err != nil {
			return false, err
		}
		if perr != nil {
			return false, nil // reached the harness's namespace
		}
		fd = parent
	}
	unix.Close(fd)
	return false, nil
}

// Signal sends sig to the process that is pid inside the host, whoever
// started it. It goes through a descriptor of the host's /proc/PID, so it
// cannot hit a process that took the PID after this one exited.
func (h *Host) Signal(pid int, sig syscall.Signal) error {
	if !h.Alive() {
		return ErrHostDown
	}
	fd, err := unix.Open(h.Path(fmt.Sprintf("/proc/%d", pid)), unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("nshost: pid %d in host %s: %w", pid, h.Name, err)
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		return fmt.Errorf("nshost: signal pid %d in host %s: %w", pid, h.Name, err)
	}
	return nil
}

// WaitGone waits until the PID number is free in the host (see HasPID), or
// ctx ends.
func (h *Host) WaitGone(ctx context.Context, pid int) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for h.HasPID(pid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("nshost: pid %d in host %s still there: %w", pid, h.Name, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// Kill kills the host as a power cut would: its links go down, its init and
// every process in it die at once. The host cannot be used afterwards; Close
// still cleans it up.
func (h *Host) Kill() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, peer := range h.cluster.Hosts {
		if peer != h {
			errs = append(errs, runIP(ctx, "", "-n", h.NetNS, "link", "set", linkName(peer), "down"))
		}
	}
	errs = append(errs, h.stop())
	return errors.Join(errs...)
}

// dial connects to the host init's control socket.
func (h *Host) dial() (*net.UnixConn, error) {
	if !h.Alive() {
		return nil, fmt.Errorf("%w: %s", ErrHostDown, h.Name)
	}
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: h.sock, Net: "unixpacket"})
	if err != nil {
		if !h.Alive() || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("%w: %s: %v", ErrHostDown, h.Name, err)
		}
		return nil, fmt.Errorf("nshost: dial host %s: %w", h.Name, err)
	}
	return c, nil
}

// WaitSocket waits until something accepts connections on the unix socket at
// path inside the host (e.g. /run/migrated/migrated.sock), or ctx ends.
func (h *Host) WaitSocket(ctx context.Context, path string) error {
	return h.waitSocket(ctx, path, nil)
}

// waitSocket polls until a connection to the unix socket at path inside the
// host succeeds. exited, when not nil, ends the wait early: the program that
// should listen is gone.
func (h *Host) waitSocket(ctx context.Context, path string, exited <-chan struct{}) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		// Checked each time: once the init is gone, its PID (and so
		// Path) may name another process.
		if !h.Alive() {
			return fmt.Errorf("%w: %s, waiting for socket %s", ErrHostDown, h.Name, path)
		}
		err := probeSocket(h.Path(path))
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nshost: wait for socket %s in host %s: %w (last: %v)", path, h.Name, ctx.Err(), err)
		case <-exited:
			return fmt.Errorf("nshost: wait for socket %s in host %s: the program exited (last: %v)", path, h.Name, err)
		case <-tick.C:
		}
	}
}

func probeSocket(p string) error {
	var err error
	for _, network := range []string{"unix", "unixpacket", "unixgram"} {
		var c net.Conn
		c, err = net.DialTimeout(network, p, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if !errors.Is(err, syscall.EPROTOTYPE) {
			return err
		}
	}
	return err
}
