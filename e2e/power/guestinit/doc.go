// Command guestinit is /init of the POWER e2e guests (built static, CGO off,
// GOARCH=ppc64le or ppc64). It mounts the pseudo filesystems, loads the
// kernel modules listed in /etc/e2e/modules, configures eth0 for the
// inter-guest link, serves the control protocol (package ctl) on /dev/hvc1,
// runs the optional boot script, and powers the guest off when asked.
//
// Kernel command line parameters it reads:
//
//	e2e.name=NAME     guest name printed in the markers
//	e2e.ip=A.B.C.D/N  address of eth0 (no address: eth0 is left down)
//	e2e.script=PATH   boot script in the initramfs (default /etc/e2e/script)
//	e2e.poweroff=1    power off after the boot script
//
// Boot script lines are "NAME ARGV..." (blank lines and # comments skipped);
// each command runs to completion and prints a RESULT marker.
//
// It must not know anything about the workloads or the agent it runs.
package main
