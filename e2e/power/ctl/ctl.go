package ctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Markers printed on the guest console (hvc0) by /init, one per line.
const (
	// MarkerPrefix starts every marker line.
	MarkerPrefix = "MIGRATED-E2E: "
	// MarkerReady is printed once the guest is set up and serving hvc1.
	MarkerReady = MarkerPrefix + "READY"
	// MarkerResult is followed by "<name> PASS|FAIL <detail>".
	MarkerResult = MarkerPrefix + "RESULT"
	// MarkerPowerOff is printed just before the guest powers off.
	MarkerPowerOff = MarkerPrefix + "POWEROFF"
)

// Builtin commands of the guest /init.
const (
	// BuiltinHello answers with "hello <uname -r> <machine> <page size>".
	BuiltinHello = "@hello"
	// BuiltinPowerOff syncs and powers the guest off; no reply is guaranteed.
	BuiltinPowerOff = "@poweroff"
	// BuiltinCat writes the named file to the output.
	BuiltinCat = "@cat"
	// BuiltinKill sends signal argv[2] (a number) to pid argv[1].
	BuiltinKill = "@kill"
	// BuiltinTCPServe listens on port argv[1], accepts one connection, reads
	// until EOF and answers with the byte count as decimal text.
	BuiltinTCPServe = "@tcp-serve"
	// BuiltinTCPSend connects to argv[1] (host:port, retrying for up to 30 s),
	// sends argv[2] bytes, half-closes and checks the peer's count.
	BuiltinTCPSend = "@tcp-send"
)

// Request asks the guest to run one command.
type Request struct {
	ID   uint64   `json:"id"`
	Argv []string `json:"argv"`
	// Env is the environment; empty means PATH=/bin:/usr/bin only.
	Env []string `json:"env,omitempty"`
	// Dir is the working directory; empty means /.
	Dir string `json:"dir,omitempty"`
	// Stdin is fed to the command's standard input.
	Stdin []byte `json:"stdin,omitempty"`
	// Name, when set, makes the guest print a RESULT marker for this
	// command on its console: PASS when it exits 0.
	Name string `json:"name,omitempty"`
	// Background starts the command and replies Done at once with its Pid;
	// its output goes to LogFile in the guest (or is discarded).
	Background bool   `json:"background,omitempty"`
	LogFile    string `json:"log_file,omitempty"`
}

// Reply is an output chunk (Out) or, with Done, the end of a request.
type Reply struct {
	ID  uint64 `json:"id"`
	Out []byte `json:"out,omitempty"`
	// Done marks the final reply for ID.
	Done bool `json:"done,omitempty"`
	// Exit is the exit status (128+signal when killed by a signal).
	Exit int `json:"exit,omitempty"`
	// Pid of the started process (set on Done).
	Pid int `json:"pid,omitempty"`
	// Err is set when the command could not be started or a builtin failed.
	Err string `json:"err,omitempty"`
}

// ErrNotMessage is returned by the decoders for a line that is not a message.
var ErrNotMessage = errors.New("ctl: line is not a protocol message")

// DecodeReply parses one line from the guest.
func DecodeReply(line []byte) (Reply, error) {
	var r Reply
	if len(line) == 0 || line[0] != '{' {
		return r, ErrNotMessage
	}
	if err := strictUnmarshal(line, &r); err != nil {
		return r, fmt.Errorf("%w: %v", ErrNotMessage, err)
	}
	if r.ID == 0 {
		return r, fmt.Errorf("%w: no id", ErrNotMessage)
	}
	return r, nil
}

// DecodeRequest parses one line from the host.
func DecodeRequest(line []byte) (Request, error) {
	var r Request
	if len(line) == 0 || line[0] != '{' {
		return r, ErrNotMessage
	}
	if err := strictUnmarshal(line, &r); err != nil {
		return r, fmt.Errorf("%w: %v", ErrNotMessage, err)
	}
	if r.ID == 0 || len(r.Argv) == 0 {
		return r, fmt.Errorf("%w: no id or argv", ErrNotMessage)
	}
	return r, nil
}

// strictUnmarshal rejects unknown fields, so a request echoed back by a tty
// that is not raw yet is not taken for a reply, and one trailing value only.
func strictUnmarshal(line []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("more than one value on the line")
	}
	return nil
}

// Encode renders a message as one line, newline included.
func Encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("ctl: encode: %w", err)
	}
	return append(b, '\n'), nil
}
