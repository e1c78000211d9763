//go:build !linux

package transport

import (
	"errors"
	"syscall"
)

// tcpCongestionControl: choosing the TCP congestion control per socket is
// Linux-only; elsewhere the OS default stays.
func tcpCongestionControl(name string, note func(ok bool, err error)) func(network, address string, c syscall.RawConn) error {
	return func(string, string, syscall.RawConn) error {
		if note != nil {
			note(false, errors.ErrUnsupported)
		}
		return nil
	}
}
