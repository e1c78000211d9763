//go:build unix

package svcinstall

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// UnreadableByService returns, for each of paths that the systemd unit's
// process could not read, why: it runs as root but without
// CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so for it a file's mode bits
// count as for anyone (the owner's bits if root owns the file, the group's
// if its group is root's, else the others'). A directory needs read and
// search, every directory above a path search. Paths that do not exist are
// left to the program's own checks.
func UnreadableByService(paths []string) []string {
	var out []string
	for _, p := range paths {
		if p == "" {
			continue
		}
		if why := rootCannotRead(p); why != "" {
			out = append(out, why)
		}
	}
	return out
}

func rootCannotRead(path string) string {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return ""
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return ""
	}
	parts := strings.Split(strings.TrimPrefix(real, "/"), "/")
	cur := "/"
	for i := 0; i <= len(parts); i++ {
		fi, err := os.Stat(cur)
		if err != nil {
			return ""
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return ""
		}
		last := i == len(parts)
		need := uint32(1) // search
		if last {
			need = 4 // read
			if fi.IsDir() {
				need = 5
			}
		}
		bits := uint32(fi.Mode().Perm()) & 7
		switch {
		case st.Uid == 0:
			bits = uint32(fi.Mode().Perm()>>6) & 7
		case st.Gid == 0:
			bits = uint32(fi.Mode().Perm()>>3) & 7
		}
		if bits&need != need {
			what := "search"
			if last {
				what = "read"
			}
			return fmt.Sprintf("%s: the service could not %s %s (owner uid %d, group %d, mode %04o); make root its owner (chown root)",
				path, what, cur, st.Uid, st.Gid, fi.Mode().Perm())
		}
		if !last {
			cur = filepath.Join(cur, parts[i])
		}
	}
	return ""
}
