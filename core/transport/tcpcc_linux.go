package transport

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// tcpCongestionControl returns a socket Control function that asks the
// kernel for the named TCP congestion control (for example "bbr") on the
// socket. It never fails the dial or listen: a kernel without the module, or
// one that does not allow it to this user, keeps its default, and the
// outcome is reported to note once per socket.
func tcpCongestionControl(name string, note func(ok bool, err error)) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, name)
		}); err != nil {
			serr = err
		}
		if note != nil {
			note(serr == nil, serr)
		}
		return nil
	}
}
