//go:build !unix && !windows

package control

import (
	"context"
	"errors"
	"net"
)

var errUnsupported = errors.New("control: the control API is not available on this system")

// Listen fails: this system has neither Unix sockets with peer
// credentials nor named pipes.
func Listen(string) (net.Listener, error) { return nil, errUnsupported }

// Dial fails, as Listen does.
func Dial(context.Context, string) (net.Conn, error) { return nil, errUnsupported }

func currentPathEnv() (pathEnv, error) { return pathEnv{}, errUnsupported }
