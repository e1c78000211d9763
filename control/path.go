package control

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
)

// DefaultPath is where a process of the given role serves its control API
// for the current user. Server and client get different sockets, so one
// user can run both; different users get different directories (or pipe
// names), so they cannot collide.
//
//   - Linux and other Unix systems: /run/qtunnel/ROLE.sock for root, else
//     $XDG_RUNTIME_DIR/qtunnel/ROLE.sock when that directory is set and is
//     the user's own, else $TMPDIR/qtunnel-UID/ROLE.sock.
//   - macOS: /var/run/qtunnel/ROLE.sock for root, else
//     $TMPDIR/qtunnel/ROLE.sock ($TMPDIR is per user there).
//   - Windows: the named pipe \\.\pipe\qtunnel-USER-ROLE.
func DefaultPath(role Role) (string, error) {
	env, err := currentPathEnv()
	if err != nil {
		return "", fmt.Errorf("control: default socket path: %w", err)
	}
	return defaultPath(env, role)
}

// pathEnv is what DefaultPath looks at, gathered in one place so that the
// rules of every platform can be tested on any of them.
type pathEnv struct {
	goos     string
	euid     int
	getenv   func(string) string
	tempDir  string
	username string // Windows only
	// ownedByMe reports whether dir exists and belongs to euid; nil means
	// "do not check".
	ownedByMe func(dir string) bool
}

func defaultPath(env pathEnv, role Role) (string, error) {
	if err := checkRole(role); err != nil {
		return "", err
	}
	sock := string(role) + ".sock"
	switch env.goos {
	case "windows":
		user := pipeNamePart(env.username)
		if user == "" {
			return "", errors.New("control: cannot name the control pipe: the current user has no name")
		}
		return `\\.\pipe\qtunnel-` + user + "-" + string(role), nil
	case "darwin", "ios":
		if env.euid == 0 {
			return filepath.Join("/var/run/qtunnel", sock), nil
		}
		if dir := env.getenv("TMPDIR"); filepath.IsAbs(dir) {
			return filepath.Join(dir, "qtunnel", sock), nil
		}
	default:
		// Root first: a root service started by init has no
		// XDG_RUNTIME_DIR while an admin's login shell may have one
		// (/run/user/0); both must find the same socket.
		if env.euid == 0 {
			return filepath.Join("/run/qtunnel", sock), nil
		}
		// XDG_RUNTIME_DIR must be absolute (the spec says to ignore it
		// otherwise) and ours: "sudo -E" can pass down another user's.
		if dir := env.getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(dir) &&
			(env.ownedByMe == nil || env.ownedByMe(dir)) {
			return filepath.Join(dir, "qtunnel", sock), nil
		}
	}
	// The shared temporary directory: the uid in the name keeps users
	// apart, and Listen refuses the directory if someone else made it.
	return filepath.Join(env.tempDir, "qtunnel-"+strconv.Itoa(env.euid), sock), nil
}

// checkRole keeps a role usable as a file and pipe name.
func checkRole(role Role) error {
	if role == "" {
		return errors.New("control: empty role")
	}
	for _, r := range role {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return fmt.Errorf("control: role %q: only a-z, 0-9 and - are allowed", role)
		}
	}
	return nil
}

// pipeNamePart turns a Windows account name ("DOMAIN\user") into
// something safe inside a pipe name, which must not contain a backslash.
func pipeNamePart(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '.', r == '_', r == '-':
			return r
		}
		return '_'
	}, name)
}
