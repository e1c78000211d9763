//go:build unix

package secretstore

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkPrivate refuses a file that someone else owns or that its group or
// others may read or write.
func checkPrivate(path string, fi fs.FileInfo) error {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("refusing to read the secret from %s: it belongs to user id %d, not to this user (%d)", path, st.Uid, os.Geteuid())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("refusing to read the secret from %s: its mode %04o lets other users read or change it; run chmod 600 %s, or save the secret again", path, perm, path)
	}
	return nil
}
