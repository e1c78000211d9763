package quic

import (
	"errors"
	"syscall"
)

// isTransientNetErr reports a send error that a network change causes and
// undoes: no route while an interface is down, an address that just went
// away, full buffers. QTunnel fork: such a packet is lost like any other
// (loss recovery sends its data again, the idle timeout ends a connection
// whose network never comes back) instead of closing the connection, so
// that a link that goes down for a few seconds does not end it.
func isTransientNetErr(err error) bool {
	return errors.Is(err, syscall.ENETUNREACH) ||
		errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETDOWN) ||
		errors.Is(err, syscall.EADDRNOTAVAIL) ||
		errors.Is(err, syscall.ENOBUFS)
}
