// Package arch is everything the engine needs to know about one task
// architecture, behind one interface (Arch). arch/x86 implements amd64 and
// i386 tasks; arch/powerpc implements ppc64le (ELFv2), ppc64 (big-endian,
// ELFv1) and ppc32 tasks.
//
// "Task architecture" is the task's, not the host's: a 32-bit task on a
// 64-bit kernel has its own Arch (i386, ppc32) with its own register layout
// as a 64-bit tracer sees it, its own syscall numbers and its own syscall
// instruction.
//
// Every number in the implementations cites the Linux header it comes from,
// so a reader can check it against the kernel's uapi.
//
// arch imports nothing of ours: the engine (inject, checkpoint, restore)
// converts between these types and the image schema. Kind and ABI values are
// chosen equal to image.Arch and image.ABI so that the conversion is a cast.
package arch
