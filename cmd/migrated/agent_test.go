package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/migrated/migrated/agent"
)

// TestAgentConfigFile: an agent configured only by --config, flags winning
// over the file, and unknown keys refused.
func TestAgentConfigFile(t *testing.T) {
	dir := sharedTempDir(t)
	gport, qport := freeGossipPorts(t, "127.0.0.1")
	control := filepath.Join(dir, "cfg.sock")
	cfg := filepath.Join(dir, "agent.json")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`{
  "name": "from-file",
  "bind": "127.0.0.1:%d",
  "quic-port": %d,
  "insecure": true,
  "gossip": "local",
  "join-timeout": "3s",
  "control": %q
}`, gport, qport, control)), 0o644)

	p := (&agentProc{name: "ignored", control: control}).start(t, "agent", "--config", cfg, "--name", "ignored")
	var v agent.VersionInfo
	if err := agent.NewClient(p.control).Get(context.Background(), "/v1/version", &v); err != nil {
		t.Fatal(err)
	}
	// --name on the command line wins over the file.
	if v.Node != "ignored" {
		t.Errorf("node %q: the command line must win over the file", v.Node)
	}
	var ci agent.ConfigInfo
	if err := agent.NewClient(p.control).Get(context.Background(), "/v1/config", &ci); err != nil {
		t.Fatal(err)
	}
	if !ci.Options.Insecure || ci.Options.JoinTimeout.String() != "3s" {
		t.Errorf("options from the file not applied: %+v", ci.Options)
	}
	if err := p.stop(t, syscall.SIGINT); err != nil {
		t.Errorf("SIGINT: %v", err)
	}

	// Only the file, no flags but --config.
	os.Remove(control)
	q := startFromConfigOnly(t, cfg, control)
	var v2 agent.VersionInfo
	if err := agent.NewClient(control).Get(context.Background(), "/v1/version", &v2); err != nil || v2.Node != "from-file" {
		t.Errorf("config-only agent: %+v %v", v2, err)
	}
	q.stop(t, syscall.SIGTERM)

	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"nmae": "x"}`), 0o644)
	if _, stderr, code := runCLI(t, nil, "agent", "--config", bad); code != exitUsage || !strings.Contains(stderr, "nmae") {
		t.Errorf("unknown key: exit %d %s", code, stderr)
	}
}

func startFromConfigOnly(t *testing.T, cfg, control string) *agentProc {
	t.Helper()
	p := &agentProc{name: "from-file", control: control}
	return p.start(t, "agent", "--config", cfg)
}
