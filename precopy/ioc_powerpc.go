//go:build linux && (ppc64 || ppc64le)

package precopy

// hostIOC is the ioctl encoding of the kernel this binary runs on: the
// ioctls are issued by us, so the encoding is the host's, not the task's.
var hostIOC = powerpcIOC
