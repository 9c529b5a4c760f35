//go:build !linux

package transport

import "net"

func sizeUDPBuffers(c *net.UDPConn) BufferReport {
	r := BufferReport{RmemMax: -1, WmemMax: -1, Want: wantUDPBuffer}
	if c.SetReadBuffer(wantUDPBuffer) == nil {
		r.Recv = wantUDPBuffer
	}
	if c.SetWriteBuffer(wantUDPBuffer) == nil {
		r.Send = wantUDPBuffer
	}
	return r
}
