package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/migrated/migrated/compat"
)

// The built-in read-only endpoints. Endpoints that change things live in
// the files of the features they belong to.
func init() {
	RegisterEndpoint("GET /v1/version", getVersion)
	RegisterEndpoint("GET /v1/caps", getCaps)
	RegisterEndpoint("GET /v1/doctor", getDoctor)
	RegisterEndpoint("GET /v1/members", getMembers)
	RegisterEndpoint("GET /v1/config", getConfig)
	RegisterEndpoint("GET /v1/proc/{pid}", getProc)
}

// VersionInfo is the body of GET /v1/version.
type VersionInfo struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
	Node    string `json:"node"`
}

func getVersion(a *Agent, r *http.Request) (any, error) {
	return VersionInfo{Version: Version(), Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, Node: a.opts.Name}, nil
}

// CapsInfo is the body of GET /v1/caps.
type CapsInfo struct {
	Caps  *compat.HostCaps  `json:"caps"`
	Notes compat.ProbeNotes `json:"notes,omitempty"`
}

func getCaps(a *Agent, r *http.Request) (any, error) {
	return CapsInfo{Caps: a.caps, Notes: a.notes}, nil
}

func getDoctor(a *Agent, r *http.Request) (any, error) {
	return Doctor(a.caps, a.notes), nil
}

func getMembers(a *Agent, r *http.Request) (any, error) {
	m := a.Members()
	if m == nil {
		return nil, fmt.Errorf("%w: the cluster is not up yet", ErrUnavailable)
	}
	return m, nil
}

// ConfigInfo is the body of GET /v1/config: the options the agent runs
// with (the secret's path, never the secret) and its addresses.
type ConfigInfo struct {
	Options  Options `json:"options"`
	Gossip   string  `json:"gossip_addr"`
	QUIC     string  `json:"quic_addr"`
	Started  string  `json:"started"`
	Services []string
}

func getConfig(a *Agent, r *http.Request) (any, error) {
	ci := ConfigInfo{Options: a.opts, QUIC: a.quic.String(), Started: a.started.UTC().Format("2006-01-02T15:04:05Z")}
	if c := a.Cluster(); c != nil {
		ci.Gossip = c.LocalAddr().String()
	}
	servicesMu.Lock()
	for _, s := range services {
		ci.Services = append(ci.Services, s.Name)
	}
	servicesMu.Unlock()
	return ci, nil
}

// ProcInfo is the body of GET /v1/proc/{pid}: what the agent knows of a
// process the caller may act on.
type ProcInfo struct {
	PID     int    `json:"pid"`
	Name    string `json:"name"`
	State   string `json:"state"`
	UID     uint32 `json:"uid"`
	Threads int    `json:"threads"`
	// Managed: the agent manages this task (it arrived by a move or was
	// started by the agent).
	Managed bool `json:"managed"`
}

func getProc(a *Agent, r *http.Request) (any, error) {
	pid, err := strconv.Atoi(r.PathValue("pid"))
	if err != nil {
		return nil, fmt.Errorf("%w: pid %q", ErrBadRequest, r.PathValue("pid"))
	}
	cred, _ := PeerCred(r.Context())
	if err := AuthorizePID(cred, pid); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, fmt.Errorf("%w: process %d: %v", ErrNotFound, pid, err)
	}
	return parseProcStatus(pid, b)
}

func parseProcStatus(pid int, b []byte) (*ProcInfo, error) {
	p := &ProcInfo{PID: pid}
	uids, err := compat.ParseStatusUIDs(b)
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	p.UID = uids[0]
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		v = strings.TrimSpace(v)
		switch k {
		case "Name":
			p.Name = v
		case "State":
			p.State = v
		case "Threads":
			p.Threads, _ = strconv.Atoi(v)
		}
	}
	return p, nil
}
