//go:build linux && !ppc64 && !ppc64le && !mips && !mipsle && !mips64 && !mips64le && !sparc64

package precopy

// hostIOC is the ioctl encoding of the kernel this binary runs on: the
// ioctls are issued by us, so the encoding is the host's, not the task's.
var hostIOC = genericIOC
