package transport

import "fmt"

// wantUDPBuffer is the socket buffer quic-go asks for (7 MiB): below it, a
// fast sender overflows the receive queue and loses packets.
const wantUDPBuffer = 7 << 20

// BufferReport says what UDP socket buffers the agent got at start-up.
type BufferReport struct {
	RmemMax, WmemMax int // /proc/sys/net/core/{r,w}mem_max; -1 if unreadable
	Recv, Send       int // effective buffer sizes granted on the socket
	Want             int
}

// Warning is empty when the buffers are large enough, else a sentence
// naming the sysctl to run.
func (r BufferReport) Warning() string {
	if r.Recv >= r.Want && r.Send >= r.Want {
		return ""
	}
	return fmt.Sprintf("transport: UDP buffers are %d KiB receive / %d KiB send (net.core.rmem_max=%d, net.core.wmem_max=%d), QUIC wants %d KiB; "+
		"run: sysctl -w net.core.rmem_max=%d net.core.wmem_max=%d",
		r.Recv>>10, r.Send>>10, r.RmemMax, r.WmemMax, r.Want>>10, r.Want, r.Want)
}
