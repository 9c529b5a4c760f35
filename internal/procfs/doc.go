// Package procfs parses the /proc files the engine reads (maps, smaps,
// status, stat, fdinfo, limits, timens_offsets). Pure functions of bytes, so
// both the source (checkpoint) and the destination (restore) use them and
// fuzz tests drive them directly.
package procfs
