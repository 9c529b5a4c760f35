// Package move runs the two sides of one live move over an authenticated
// transport session, as DESIGN.md draws it:
//
//	source                                   destination
//	Hello, Manifest  ----------------------> compat.Decide
//	                 <---------------------- Verdict (REJECT: done, task untouched)
//	per round: Layout -------------------->  map / unmap / map fresh ranges
//	                 <---------------------- RoundAck (layout applied)
//	           pages (page streams) ------>  written straight into the new process
//	           RoundDone ----------------->  wait for every frame of the round
//	                 <---------------------- RoundAck
//	freeze; final Layout, pages, RoundDone, Final(task) -> compat re-check, Finish
//	                 <---------------------- Prepared | Failed (source thaws)
//	Commit           ---------------------->  Resume
//	                 <---------------------- Running(pid)
//	read signals queued since the capture
//	Forward(late signals) ------------------>  send them to the task
//	kill the frozen original <-------------- ForwardDone(how many were sent)
//
// Any failure before Commit leaves the original running exactly as it was:
// the source closes the pre-copy session (disarming dirty tracking) and
// thaws. Between Commit and Running the move is in doubt: the source keeps
// the original frozen and asks the destination for the outcome by move id
// (Outcomes), and only a definite "not resumed" lets it thaw.
//
// A signal sent to the original after its state was read is not in the
// image: Forward carries it to the destination (late.go), also when the
// doubt is resolved by asking (over the asking session, and only while the
// task's PID still names it); the report counts what was not confirmed as
// lost.
//
// The package knows the engine (checkpoint, restore, precopy), compat and
// the transport; it does not know the agent's control API or the cluster.
package move
