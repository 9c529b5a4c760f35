package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/migrated/migrated/agent"
	"github.com/migrated/migrated/cluster"
	"github.com/migrated/migrated/compat"
)

// membersOf runs `migrated members --json` against p's control socket.
func membersOf(t *testing.T, p *agentProc) map[string]cluster.Member {
	t.Helper()
	var ms []cluster.Member
	runCLIJSON(t, &ms, "--control", p.control, "members", "--json")
	out := map[string]cluster.Member{}
	for _, m := range ms {
		out[m.Name] = m
	}
	return out
}

func statesOf(ms map[string]cluster.Member) map[string]cluster.State {
	s := map[string]cluster.State{}
	for n, m := range ms {
		s[n] = m.State
	}
	return s
}

func sameStates(got, want map[string]cluster.State) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// waitStates polls `members --json` on p until it shows want.
func waitStates(t *testing.T, p *agentProc, d time.Duration, want map[string]cluster.State) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := statesOf(membersOf(t, p))
		if sameStates(got, want) {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("after %v %s sees %v, want %v", d, p.name, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeSecret(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if _, stderr, code := runCLI(t, nil, "keygen", "-o", path); code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, stderr)
	}
	return path
}

// TestClusterAcceptance: three agents on 127.0.0.1, .2 and .3 form a
// cluster and each one's `members --json` shows all three alive with the
// right capabilities within 2 s; an agent with another secret cannot join
// and is never seen; an agent that stops is shown left, one that is killed
// failed.
func TestClusterAcceptance(t *testing.T) {
	dir := sharedTempDir(t)
	secret := writeSecret(t, dir, "cluster.key")

	var doctor agent.DoctorReport
	stdout, stderr, _ := runCLI(t, nil, "doctor", "--json")
	if err := json.Unmarshal([]byte(stdout), &doctor); err != nil {
		t.Fatalf("doctor --json: %v\n%s%s", err, stdout, stderr)
	}
	host := doctor.Caps

	// c advertises the opposite 32-bit support: members must show each
	// node's own metadata, not this host's.
	override := filepath.Join(dir, "caps.json")
	os.WriteFile(override, []byte(fmt.Sprintf(`{"compat32": %v}`, !host.Compat32)), 0o644)

	a := startAgentProc(t, dir, "a", "127.0.0.1", "--secret-file", secret)
	b := startAgentProc(t, dir, "b", "127.0.0.2", "--secret-file", secret, "--join", a.gossip)
	c := startAgentProc(t, dir, "c", "127.0.0.3", "--secret-file", secret, "--join", a.gossip, "--caps-override", override)
	agents := []*agentProc{a, b, c}

	all := map[string]cluster.State{"a": cluster.StateAlive, "b": cluster.StateAlive, "c": cluster.StateAlive}
	for _, p := range agents {
		took := waitStates(t, p, 10*time.Second, all)
		t.Logf("%s shows all three alive at the %v poll after every agent answered", p.name, took)
	}
	for _, p := range agents {
		for name, m := range membersOf(t, p) {
			checkMember(t, p.name, m, agents, host, name == "c")
			if m.Local != (name == p.name) {
				t.Errorf("%s's view of %s: local=%v", p.name, name, m.Local)
			}
		}
	}

	// The table lists the same members.
	table, _, code := runCLI(t, nil, "--control", b.control, "members")
	if code != 0 || strings.Count(table, " alive ") != 3 || !strings.Contains(table, "b *") {
		t.Errorf("members table (exit %d):\n%s", code, table)
	}

	// Another secret: the join fails, the agent exits non-zero, and no
	// member ever shows it.
	other := writeSecret(t, dir, "other.key")
	gport, qport := freeGossipPorts(t, "127.0.0.4")
	dArgs := []string{"agent", "--name", "d", "--bind", fmt.Sprintf("127.0.0.4:%d", gport), "--quic-port", fmt.Sprint(qport),
		"--control", filepath.Join(dir, "d.sock"), "--gossip", "local", "--secret-file", other,
		"--join", a.gossip + "," + b.gossip, "--join-timeout", "2s"}
	dDone := make(chan struct{})
	var dStderr string
	var dCode int
	go func() {
		defer close(dDone)
		_, dStderr, dCode = runCLI(t, nil, dArgs...)
	}()
	for watching := true; watching; {
		select {
		case <-dDone:
			watching = false
		case <-time.After(100 * time.Millisecond):
		}
		for _, p := range agents {
			if _, seen := membersOf(t, p)["d"]; seen {
				t.Fatalf("%s sees the agent with the wrong secret", p.name)
			}
		}
	}
	if dCode == 0 || !strings.Contains(dStderr, "cannot join") {
		t.Errorf("agent with another secret: exit %d, stderr:\n%s", dCode, dStderr)
	}
	for _, p := range agents {
		if got := statesOf(membersOf(t, p)); !sameStates(got, all) {
			t.Errorf("%s sees %v after the wrong-secret attempt", p.name, got)
		}
	}

	// c stops gracefully: a and b show it left; its socket is gone.
	if err := c.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("c after SIGTERM: %v\n%s", err, c.stderr)
	}
	if _, err := os.Stat(c.control); !os.IsNotExist(err) {
		t.Errorf("c's control socket is still there: %v", err)
	}
	for _, p := range []*agentProc{a, b} {
		waitStates(t, p, 5*time.Second, map[string]cluster.State{"a": cluster.StateAlive, "b": cluster.StateAlive, "c": cluster.StateLeft})
	}

	// b is killed: a shows it failed.
	b.stop(t, syscall.SIGKILL)
	took := waitStates(t, a, 30*time.Second, map[string]cluster.State{"a": cluster.StateAlive, "b": cluster.StateFailed, "c": cluster.StateLeft})
	t.Logf("a declared the killed b failed after %v", took)

	// b's socket file is left behind by SIGKILL: nothing answers on it.
	_, stderr, code = runCLI(t, nil, "--control", b.control, "members")
	if code != exitAgentNotRunning || !strings.Contains(stderr, b.control) {
		t.Errorf("members on a dead agent's socket: exit %d: %s", code, stderr)
	}
}

func checkMember(t *testing.T, viewer string, m cluster.Member, agents []*agentProc, host *compat.HostCaps, flipped bool) {
	t.Helper()
	if m.Meta == nil {
		t.Errorf("%s's view of %s: no metadata (%s)", viewer, m.Name, m.MetaError)
		return
	}
	var self *agentProc
	for _, p := range agents {
		if p.name == m.Name {
			self = p
		}
	}
	if self == nil {
		t.Errorf("%s sees unknown member %s", viewer, m.Name)
		return
	}
	got := m.Meta.Caps
	want := *host
	if flipped {
		want.Compat32 = !want.Compat32
	}
	errs := []string{}
	check := func(what string, ok bool, g, w any) {
		if !ok {
			errs = append(errs, fmt.Sprintf("%s %v, want %v", what, g, w))
		}
	}
	check("address", m.Addr == self.gossip, m.Addr, self.gossip)
	check("quic", m.Meta.QUIC.String() == self.quic, m.Meta.QUIC, self.quic)
	check("arch", got.Arch == want.Arch, got.Arch, want.Arch)
	check("endian", got.Endian == want.Endian, got.Endian, want.Endian)
	check("page size", got.PageSize == want.PageSize, got.PageSize, want.PageSize)
	check("hwcap", got.HWCap == want.HWCap && got.HWCap2 == want.HWCap2, got.HWCap, want.HWCap)
	check("compat32", got.Compat32 == want.Compat32, got.Compat32, want.Compat32)
	check("kernel", got.KernelRelease == want.KernelRelease, got.KernelRelease, want.KernelRelease)
	check("dirty trackers", strings.Join(got.DirtyTrackers, ",") == strings.Join(want.DirtyTrackers, ","), got.DirtyTrackers, want.DirtyTrackers)
	check("vdso", got.VDSO != nil && want.VDSO != nil && bytes.Equal(got.VDSO.Sha256, want.VDSO.Sha256) &&
		len(got.VDSO.Layout) == len(want.VDSO.Layout), got.VDSO, want.VDSO)
	check("cap_sys_resource", got.CapSysResource == want.CapSysResource, got.CapSysResource, want.CapSysResource)
	check("free memory", m.Meta.FreeMemory > 0 && m.Meta.FreeMemory <= m.Meta.TotalMemory, m.Meta.FreeMemory, "in (0, total]")
	if len(errs) > 0 {
		t.Errorf("%s's view of %s: %s", viewer, m.Name, strings.Join(errs, "; "))
	}
}
