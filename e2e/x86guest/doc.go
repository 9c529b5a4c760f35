// Package x86guest runs a command inside an x86_64 QEMU guest (TCG) with
// Debian's own amd64 kernel, in the host's root file system (shared
// read-only over virtio 9p, with the guest's own /proc, /sys, /dev, /run
// and /tmp). It exists for what this machine's kernel cannot do: the VM the
// project is developed on has IA-32 emulation switched off, so i386 tasks
// (issue 8) are checkpointed, restored and moved between namespace hosts
// inside this guest, by the same test binaries that run on the host.
//
// The guest has no network device. Its kernel is the package that
// linux-image-amd64 depends on, fetched once with the machine's own apt
// configuration into the cache (CacheDir). /init is guestinit, a static Go
// program; it loads virtio-pci, 9p and veth, enters the host's root, copies
// the directories the caller names into /tmp, runs the command and powers
// off after printing spec.ExitMarker and the exit status.
//
// This package must not know what the command tests.
package x86guest
