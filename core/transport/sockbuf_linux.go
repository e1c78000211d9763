package transport

import (
	"net"

	"golang.org/x/sys/unix"
)

const udpBufferHint = "run as root: sysctl -w net.core.rmem_max=7500000 net.core.wmem_max=7500000 (and add them to /etc/sysctl.d/ to keep them)"

// raiseUDPBuffers asks for want bytes in both directions, forcing past the
// sysctl caps when the process may (root or CAP_NET_ADMIN), and returns what
// the kernel reports. Linux reports (and accounts) twice the size requested;
// like quic-go, which asks for these sizes, the reported value is compared.
func raiseUDPBuffers(c *net.UDPConn, want int) (rcv, snd int) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, 0
	}
	_ = raw.Control(func(fd uintptr) {
		for _, o := range []struct{ set, force, get int }{
			{unix.SO_RCVBUF, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF},
			{unix.SO_SNDBUF, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF},
		} {
			cur, _ := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, o.get)
			if cur >= want {
				continue
			}
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.force, want) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.set, want)
			}
		}
		r, _ := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		s, _ := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
		rcv, snd = r, s
	})
	return rcv, snd
}
