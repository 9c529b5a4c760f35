package transport

import (
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// sizeUDPBuffers asks for wantUDPBuffer on both socket buffers, with the
// FORCE variants (they need CAP_NET_ADMIN) when the sysctl limits are lower,
// and reports what the kernel granted.
func sizeUDPBuffers(c *net.UDPConn) BufferReport {
	r := BufferReport{RmemMax: readSysctl("net/core/rmem_max"), WmemMax: readSysctl("net/core/wmem_max"), Want: wantUDPBuffer}
	raw, err := c.SyscallConn()
	if err != nil {
		return r
	}
	raw.Control(func(fd uintptr) {
		for _, o := range []struct {
			get, force int
			got        *int
		}{{unix.SO_RCVBUF, unix.SO_RCVBUFFORCE, &r.Recv}, {unix.SO_SNDBUF, unix.SO_SNDBUFFORCE, &r.Send}} {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.get, wantUDPBuffer)
			if effective(int(fd), o.get) < wantUDPBuffer {
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.force, wantUDPBuffer)
			}
			*o.got = effective(int(fd), o.get)
		}
	})
	return r
}

// effective is the usable size of a socket buffer: Linux reports twice the
// size it was set to (the other half is its bookkeeping, socket(7)).
func effective(fd, opt int) int {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt)
	if err != nil {
		return 0
	}
	return v / 2
}

func readSysctl(name string) int {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return -1
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return v
}
