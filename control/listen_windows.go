//go:build windows

package control

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os/user"
	"runtime"

	"github.com/Microsoft/go-winio"
	"golang.org/x/sys/windows"
)

// Listen serves the control API on the named pipe path. The pipe's
// security descriptor makes the current user its owner and grants access
// to that user alone (administrators and SYSTEM included are left out;
// they manage their own tunnels). Remote clients are rejected. If the pipe
// exists already, another qtunnel (or someone squatting on the name) has
// it, and Listen fails with an error matching ErrInUse.
func Listen(path string) (net.Listener, error) {
	sid, err := currentUserSID()
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	// O: sets the owner Dial checks; D:P is a protected DACL (nothing
	// inherited) with one entry: generic all for this user.
	sddl := fmt.Sprintf("O:%sD:P(A;;GA;;;%s)", sid, sid)
	ln, err := winio.ListenPipe(path, &winio.PipeConfig{SecurityDescriptor: sddl})
	if errors.Is(err, fs.ErrExist) || errors.Is(err, fs.ErrPermission) {
		// The name is taken: by another qtunnel of this user, or by
		// anyone else (access denied), since pipe names are global.
		return nil, &kindError{
			kind:  ErrInUse,
			msg:   fmt.Sprintf("control: another qtunnel (or another program) already uses control pipe %s", path),
			cause: err,
		}
	}
	if err != nil {
		return nil, fmt.Errorf("control: listen on %s: %w", path, err)
	}
	return ln, nil
}

// Dial connects to the named pipe path and checks that the current user
// owns it: pipe names are global, so another user could have created one
// by this name to receive what the CLI sends, the secret included.
func Dial(ctx context.Context, path string) (net.Conn, error) {
	c, err := winio.DialPipeContext(ctx, path)
	if err != nil {
		return nil, err
	}
	if err := checkPipeOwner(c, path); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func checkPipeOwner(c net.Conn, path string) error {
	f, ok := c.(interface{ Fd() uintptr })
	if !ok {
		return fmt.Errorf("control: cannot check who owns %s (connection type %T)", path, c)
	}
	sd, err := windows.GetSecurityInfo(windows.Handle(f.Fd()), windows.SE_KERNEL_OBJECT, windows.OWNER_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("control: check who owns %s: %w", path, err)
	}
	owner, _, err := sd.Owner()
	if err != nil {
		return fmt.Errorf("control: check who owns %s: %w", path, err)
	}
	tu, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return fmt.Errorf("control: current user: %w", err)
	}
	if owner == nil {
		return &kindError{kind: ErrForbidden, msg: fmt.Sprintf("control pipe %s has no owner; not talking to it", path)}
	}
	if !owner.Equals(tu.User.Sid) {
		return &kindError{
			kind: ErrForbidden,
			msg:  fmt.Sprintf("control pipe %s belongs to %s, not to this user; not talking to it", path, owner.String()),
		}
	}
	return nil
}

func currentUserSID() (string, error) {
	tu, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return "", fmt.Errorf("current user: %w", err)
	}
	return tu.User.Sid.String(), nil
}

func currentPathEnv() (pathEnv, error) {
	u, err := user.Current()
	if err != nil {
		return pathEnv{}, err
	}
	return pathEnv{goos: runtime.GOOS, euid: -1, username: u.Username}, nil
}
