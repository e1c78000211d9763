package control

import "golang.org/x/sys/unix"

const peerCredSupported = true

// peerUIDOf reads SO_PEERCRED: the credentials the peer had when it
// called connect (or listen, seen from the client's side).
func peerUIDOf(fd int) (int, error) {
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return -1, err
	}
	return int(cred.Uid), nil
}
