// Package spec is what the host side of e2e/x86guest tells the guest's /init:
// the command to run and the directories to copy in (the JSON file
// /etc/e2e/cmd), and the line the guest ends with.
package spec

import "time"

// ExitMarker starts the guest's last line: "<ExitMarker> <exit code>".
const ExitMarker = "X86GUEST-EXIT"

// Path is where the command is in the initramfs.
const Path = "/etc/e2e/cmd"

// Command is run by the guest's /init in the host's root file system
// (read-only, with its own /proc, /sys, /dev, /run and /tmp).
type Command struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
	// Copy lists host directories copied into the guest's /tmp before the
	// command starts (the host's own /tmp is hidden under the guest's).
	Copy    []Copy        `json:"copy"`
	Timeout time.Duration `json:"timeout"`
}

// Copy is one host directory copied to /tmp/To in the guest.
type Copy struct {
	From string `json:"from"`
	To   string `json:"to"`
}
