package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/compat"
)

// AuthorizePID decides whether the caller with credentials cred may act
// on pid: root may act on any process; another uid only on a process whose
// real, effective and saved uids are all its own (the rule ptrace applies
// to a non-root tracer). It returns an error wrapping ErrNotFound when the
// process does not exist, ErrNotPermitted when the caller may not act on
// it, ErrBadRequest for an impossible pid.
//
// The check reads /proc/PID/status; a caller that acts on the PID
// afterwards should hold a pidfd opened before the check, so that a
// recycled PID cannot be substituted.
func AuthorizePID(cred unix.Ucred, pid int) error {
	if pid <= 0 {
		return fmt.Errorf("%w: pid %d", ErrBadRequest, pid)
	}
	uids, err := procUIDs(pid)
	if err != nil {
		return err
	}
	if cred.Uid == 0 {
		return nil
	}
	if uids[0] == cred.Uid && uids[1] == cred.Uid && uids[2] == cred.Uid {
		return nil
	}
	return fmt.Errorf("%w: uid %d may not act on pid %d (uid %d)", ErrNotPermitted, cred.Uid, pid, uids[0])
}

func procUIDs(pid int) ([4]uint32, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return [4]uint32{}, fmt.Errorf("%w: no process %d", ErrNotFound, pid)
	}
	if err != nil {
		return [4]uint32{}, fmt.Errorf("process %d: %w", pid, err)
	}
	return compat.ParseStatusUIDs(b)
}

// authorizeCaller checks that the caller of a control request (its
// SO_PEERCRED) may act on pid.
func authorizeCaller(r *http.Request, pid int) error {
	cred, ok := PeerCred(r.Context())
	if !ok {
		return fmt.Errorf("%w: no peer credentials", ErrNotPermitted)
	}
	return AuthorizePID(cred, pid)
}
