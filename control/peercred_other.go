//go:build unix && !linux && !darwin && !freebsd

package control

import "errors"

// Without a way to learn the peer's uid, Listen refuses to serve rather
// than serve everyone who can reach the socket.
const peerCredSupported = false

func peerUIDOf(int) (int, error) {
	return -1, errors.New("peer credentials are not supported on this system")
}
