// Package compat decides, before anything irreversible, whether a host can
// run a task: Decide compares a task's Manifest with the destination's
// HostCaps and answers ACCEPT, TRANSLATE (with a plan) or REJECT (with every
// reason, each a stable code from reasons.go plus a sentence a person
// understands; docs/reason-codes.md documents the codes).
//
// It owns:
//   - HostCaps, what a host offers (hostcaps.go; probed by probe*.go);
//   - the decision rules (decide.go) and the reason codes (reasons.go);
//   - the capability manifest: NewManifest derives it from a captured Task
//     (manifest_task.go), Capabilities reads what a thread uses from its
//     register sets (manifest.go, with RegsetName), and the HWCAP/HWCAP2/
//     XSAVE bit tables carry the kernel's names (manifest_hwcap.go);
//   - the 32<->64-bit translation: a 32-bit task's register sets as a
//     64-bit tracer sees them (translate_regs.go) and the compat layouts of
//     the structs restore injects into a 32-bit task (translate_compat.go).
//
// It must not know how a task is frozen, read, sent or rebuilt: no ptrace, no
// /proc of the task, no network. Decide is a pure function of its two
// arguments so that the source (`migrated check`), the destination (before
// pre-copy and again before Prepared) and the rebalancer all reach the same
// answer from the same facts.
package compat
