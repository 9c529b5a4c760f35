// Package engine holds the root-only integration tests of the task engine:
// real programs are checkpointed and restored on this host, keep their PIDs,
// and verify themselves afterwards.
package engine
