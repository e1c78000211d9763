//go:build !linux

package transport

import "net"

const udpBufferHint = "raise the OS limit on UDP socket buffers (on macOS: sysctl -w kern.ipc.maxsockbuf=8441037)"

// raiseUDPBuffers asks for want bytes in both directions. Outside Linux the
// granted size cannot be read back portably, so a successful request is
// taken at its word.
func raiseUDPBuffers(c *net.UDPConn, want int) (rcv, snd int) {
	if c.SetReadBuffer(want) == nil {
		rcv = want
	}
	if c.SetWriteBuffer(want) == nil {
		snd = want
	}
	return rcv, snd
}
