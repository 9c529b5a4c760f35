package arch

// Reading a task's signal actions takes one rt_sigaction per signal, and
// each injected call costs a tracer round trip (two ptrace stops), which is
// most of what the freeze spends capturing a task. A SigactionLooper runs
// all 64 calls inside the task in one go instead: a few instructions that
// loop over the signals and end in a trap.

// The buffer the loop fills: one slot per signal 1..64.
const (
	SigLoopSignals = 64
	// SigLoopSlot is the size of a slot: the struct sigaction the kernel
	// writes (at most 32 bytes on every arch here), then the result.
	SigLoopSlot = 48
	// SigLoopResult is where in a slot the loop stores the call's result:
	// the return register (a word), and on powerpc the condition register
	// (4 bytes) at SigLoopResult+8.
	SigLoopResult = 32
	// SigLoopBytes is the whole buffer.
	SigLoopBytes = SigLoopSignals * SigLoopSlot
)

// SigactionLooper is an Arch whose tasks can read every signal action in
// one injected run.
type SigactionLooper interface {
	// SigactionLoop returns position-independent code that calls
	// rt_sigaction(sig, NULL, slot, 8) (set: rt_sigaction(sig, slot,
	// NULL, 8)) for sig from 1 to 64 with consecutive slots of the buffer,
	// stores each result in its slot, and executes a trap; trapPC is the
	// PC the tracer sees at that trap's SIGTRAP stop, as an offset from the
	// code's start. The code uses no memory but the buffer (not the stack)
	// and only registers a syscall preserves.
	SigactionLoop(set bool) (code []byte, trapPC uint64)
	// SetSigactionLoop points r (a copy of the thread's registers) at the
	// code, placed at code, filling the buffer at buf.
	SetSigactionLoop(r Regs, code, buf uint64)
	// SigLoopErrno decodes the result in a slot (SigLoopSlot bytes).
	SigLoopErrno(slot []byte) Errno
}
