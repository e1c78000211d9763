package transport

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"
)

// watchNetlink reports address and link changes from the kernel's routing
// netlink socket until ctx is done (within a second); an error means it
// could not listen.
func watchNetlink(ctx context.Context, changes chan<- struct{}) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	// Links and addresses: what a move between networks changes. Routes
	// change too, but with them come a flood of unrelated events.
	groups := uint32(unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		_ = unix.Close(fd)
		return fmt.Errorf("netlink bind: %w", err)
	}
	// A blocking read cannot be interrupted: closing the socket from
	// another goroutine does not wake it. A receive timeout lets the loop
	// look at ctx once a second.
	tv := unix.Timeval{Sec: 1}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		_ = unix.Close(fd)
		return fmt.Errorf("netlink timeout: %w", err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 1<<16)
	for ctx.Err() == nil {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil || n <= 0 {
			continue // timeout, EINTR, or ENOBUFS after a burst: look again
		}
		select {
		case changes <- struct{}{}:
		default:
		}
	}
	return nil
}
