// Package checkpoint is the source side of the engine: it checks that a task
// can be moved (before touching it), freezes every thread with ptrace,
// captures the task's state from /proc, from the register sets and from
// system calls injected into the task where /proc is silent, reads its
// memory with process_vm_readv, and thaws or kills it afterwards.
//
// It produces image.Task values and page batches; it knows nothing of files,
// the network or the destination.
package checkpoint
