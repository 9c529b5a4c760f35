// Package agent is the migrated daemon: it probes the host (compat.Probe),
// joins the cluster (package cluster), serves the control API on a unix
// socket, exports metrics, and runs the services other files of this
// package register (the QUIC transport, the move state machine, the
// journal).
//
// The control API is HTTP/1.1 with JSON bodies on a unix socket, as Docker
// does. Every request carries the caller's SO_PEERCRED credentials; an
// endpoint that acts on a PID authorises it with AuthorizePID (root, or
// the uid that owns the PID). Endpoints are registered from any file of the
// package with RegisterEndpoint in an init function; services (things with
// a lifetime) with RegisterService.
//
// The agent must not know how a move works inside (precopy, checkpoint,
// restore own that) nor how the CLI prints things (cmd/migrated owns that).
package agent
