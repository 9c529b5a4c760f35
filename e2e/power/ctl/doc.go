// Package ctl is the line protocol between the POWER e2e harness on the host
// and the /init of a guest, carried over the guest's second console
// (/dev/hvc1, a unix socket on the host). It needs no IP in the guest.
//
// Each message is one JSON object on one line. The host sends Requests; the
// guest answers each with zero or more Replies carrying output chunks and
// exactly one final Reply with Done set. Requests run concurrently in the
// guest and are told apart by ID. Lines that do not decode are ignored by both
// sides (a tty may echo or drop bytes before the guest sets it raw).
//
// Commands whose argv[0] starts with '@' are built into the guest /init (see
// the Builtin constants); everything else is executed directly (there is no
// shell in the guest).
//
// This package owns only the wire format; it must not know about QEMU.
package ctl
