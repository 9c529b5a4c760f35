// Package precopy is the pre-copy loop of a move: it tracks which pages of a
// running task are written (dirty tracking), sends the task's memory in
// rounds while it keeps running, decides when the rest is small enough to
// send with the task frozen (the convergence controller), and slows the task
// down when it dirties memory faster than the link drains it (throttling).
//
// # Trackers
//
// Three dirty trackers sit behind the Tracker interface, chosen by Probe in
// this order:
//
//   - uffd-wp: a userfaultfd of the task's mm in asynchronous write-protect
//     mode, read back and re-armed in one PAGEMAP_SCAN walk per VMA (Linux
//     >= 6.7; not on POWER). The fd is created inside the frozen task by an
//     injected userfaultfd(2), copied out with pidfd_getfd(2) and closed in
//     the task; Close unprotects, unregisters and closes it.
//   - soft-dirty: bit 55 of /proc/PID/pagemap, cleared with clear_refs "4"
//     (CONFIG_MEM_SOFT_DIRTY, e.g. the POWER guests). Each collection
//     freezes the task while it reads and clears the bits.
//   - hash: an xxhash64 of every page against the hash of what was sent.
//     Always works; reads all memory each round.
//
// # Rounds
//
// Round 0 sends every page that holds data. Each later round re-reads the
// VMA list, reports the layout and its changes (Layout), sends new or
// replaced mappings whole and the dirty pages of the others, and measures
// the round. Pages the task dropped (MADV_DONTNEED) travel as zero pages.
// A move uses it like this:
//
//	s, err := precopy.Run(ctx, pid, sink, opts) // rounds while the task runs
//	f, err := checkpoint.Freeze(pid)            // the caller freezes it
//	st, err := s.Final(ctx)                     // the last dirty pages, exact
//	err = s.Close()                             // disarm: the task is as before
//
// and on abort Close, then f.Thaw(). Run undoes everything itself when it
// fails.
//
// It reads the task through package checkpoint and hands layouts and pages
// to a Sink; it knows nothing of the transport, the destination, page
// encoding or the move protocol.
package precopy
