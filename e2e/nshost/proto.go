package nshost

import (
	"encoding/json"
	"errors"
	"fmt"
	"syscall"
)

// The protocol between the harness and a host init, over one SOCK_SEQPACKET
// connection per command:
//
//	harness -> init  spawnRequest (JSON), with SCM_RIGHTS: stdin, stdout, stderr
//	init -> harness  reply{Kind: "started", PID}, with SCM_RIGHTS: a pidfd
//	                 or reply{Kind: "error", Error}
//	harness -> init  any datagram: the acknowledgement
//	init -> harness  reply{Kind: "exit", Status} when the command has been reaped
//
// Every message is one datagram of at most maxMessage bytes. Between
// "started" and the acknowledgement (or the end of the connection, or
// ackTimeout) the init reaps nothing, so the pidfd still names a process
// whose PIDs the harness can read, even if the command has already exited.

const (
	maxMessage = 256 << 10
	// stdioFiles is the number of descriptors a spawnRequest carries.
	stdioFiles = 3
)

// errBadMessage marks a message from the other side that does not decode.
var errBadMessage = errors.New("nshost: bad control message")

type spawnRequest struct {
	Path string   `json:"path"`
	Args []string `json:"args"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir,omitempty"`
	// WantPID, when not 0, is the PID the command should get: the init
	// sets ns_last_pid just before it forks.
	WantPID int `json:"want_pid,omitempty"`
	// Cred, when set, runs the command as another user.
	Cred *credential `json:"cred,omitempty"`
}

type credential struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
}

const (
	replyStarted = "started"
	replyError   = "error"
	replyExit    = "exit"
)

type reply struct {
	Kind   string `json:"kind"`
	PID    int    `json:"pid,omitempty"`
	Status uint32 `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

func decodeRequest(b []byte) (*spawnRequest, error) {
	var r spawnRequest
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: request: %v", errBadMessage, err)
	}
	if r.Path == "" || len(r.Args) == 0 {
		return nil, fmt.Errorf("%w: request without a program", errBadMessage)
	}
	if r.WantPID < 0 || r.WantPID == 1 {
		return nil, fmt.Errorf("%w: request for pid %d", errBadMessage, r.WantPID)
	}
	return &r, nil
}

func decodeReply(b []byte) (*reply, error) {
	var r reply
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: reply: %v", errBadMessage, err)
	}
	switch r.Kind {
	case replyStarted:
		if r.PID <= 0 {
			return nil, fmt.Errorf("%w: started without a pid", errBadMessage)
		}
	case replyError:
		if r.Error == "" {
			return nil, fmt.Errorf("%w: error without a text", errBadMessage)
		}
	case replyExit:
	default:
		return nil, fmt.Errorf("%w: unknown reply kind %q", errBadMessage, r.Kind)
	}
	return &r, nil
}

// ExitError reports a command that did not exit with status 0.
type ExitError struct {
	Status syscall.WaitStatus
}

func (e *ExitError) Error() string {
	switch {
	case e.Status.Exited():
		return fmt.Sprintf("exit status %d", e.Status.ExitStatus())
	case e.Status.Signaled():
		return "signal: " + e.Status.Signal().String()
	}
	return fmt.Sprintf("wait status %#x", uint32(e.Status))
}

// ExitCode is the exit status, or -1 when the command was killed by a signal.
func (e *ExitError) ExitCode() int { return e.Status.ExitStatus() }
