// Package power is the end-to-end harness for POWER: it boots pairs of QEMU
// pseries guests (TCG) on this amd64 machine and runs commands in them.
//
// A pair is two guests of one architecture, ppc64le (Debian's ppc64el kernel,
// 64 KiB pages, no COMPAT) or ppc64 (the project's big-endian kernel with
// COMPAT, so 32-bit powerpc programs run too), joined by a QEMU stream
// network whose host side is 127.0.0.1 inside a private network namespace.
// Each guest's initramfs holds the static Go /init of ./guestinit, the
// virtio-net modules when the kernel needs them, and whatever files the
// caller adds (agents, workloads). The harness talks to /init over the
// guest's second console, /dev/hvc1, a unix socket on the host (package ctl),
// so it can run commands and collect their output without IP; the guest
// console (hvc0) is logged and carries the MIGRATED-E2E markers.
//
// Kernels come from kernel-le.sh and kernel-be.sh (cached under
// /var/cache/migrated-e2e or $XDG_CACHE_HOME/migrated-e2e); run.sh is the one
// entry point that installs packages, fetches or builds kernels and runs the
// tests. The tests here boot guests only when MIGRATED_E2E_POWER=1.
//
// This package owns the guests' lifecycle and the wire to them; it must not
// know what the agent or the workloads do.
package power
