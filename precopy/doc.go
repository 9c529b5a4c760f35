// Package precopy is the pre-copy loop of a move: it tracks which pages of a
// running task are written (dirty tracking), sends the task's memory in
// rounds while it keeps running, decides when the rest is small enough to
// send with the task frozen (the convergence controller), and slows the task
// down when it dirties memory faster than the link drains it (throttling).
//
// Three dirty trackers sit behind one interface, chosen by probing the
// kernel (Probe): userfaultfd asynchronous write-protect read back with
// PAGEMAP_SCAN (amd64 kernels >= 6.7), soft-dirty bits in
// /proc/PID/pagemap (kernels with CONFIG_MEM_SOFT_DIRTY, such as the POWER
// guests), and a hash of every page (always works, costs a read of all
// memory per round).
//
// A move uses it like this:
//
//	s, err := precopy.Run(ctx, pid, sink, opts) // rounds while the task runs
//	// ... freeze the task (checkpoint.Freeze) ...
//	err = s.Final(ctx)  // the last dirty pages, with the task frozen
//	err = s.Close()     // disarm: the task is left as it was
//
// It reads the task through package checkpoint and hands pages to a Sink;
// it knows nothing of the transport, the destination or the move protocol.
package precopy
