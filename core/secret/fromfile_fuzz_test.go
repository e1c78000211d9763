package secret

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// FuzzFromFile writes arbitrary contents, with arbitrary permission bits
// (the owner may always read), to a secret file and reads it with
// FromFile. The secret must be the contents without surrounding white
// space; a file is refused exactly when it is readable by others, larger
// than a secret's file can be, or holds an empty or too long secret; and
// a refusal is one of FromFile's sentences, which name the path but
// never quote the contents.
func FuzzFromFile(f *testing.F) {
	f.Add([]byte("mysecret\n"), uint16(0o600))
	f.Add([]byte("\t  ZmFrZS1rZXktMzItYnl0ZXMtbG9uZy1iYXNlNjR1cmwtMDAw \r\n"), uint16(0o400))
	f.Add([]byte("two\nlines\n"), uint16(0o600))
	f.Add([]byte(" \n\t"), uint16(0o600))
	f.Add([]byte{}, uint16(0o600))
	f.Add([]byte("\x00\xff binary"), uint16(0o700))
	f.Add([]byte("readable"), uint16(0o644))
	f.Add([]byte("group"), uint16(0o640))
	f.Add(bytes.Repeat([]byte("a"), MaxLen), uint16(0o600))
	f.Add(append(bytes.Repeat([]byte("b"), MaxLen), "\r\n"...), uint16(0o600))
	f.Add(bytes.Repeat([]byte("c"), MaxLen+1), uint16(0o600))
	f.Add(bytes.Repeat([]byte("d"), MaxLen+3), uint16(0o600))
	path := filepath.Join(f.TempDir(), "secret")
	f.Fuzz(func(t *testing.T, contents []byte, perm uint16) {
		mode := fs.FileMode(perm)&0o777 | 0o400
		_ = os.Chmod(path, 0o600) // writable again after a 0400 round
		if err := os.WriteFile(path, contents, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		s, err := FromFile(path)

		trimmed := bytes.TrimSpace(contents)
		var want string // the error FromFile must give, "" for none
		switch {
		case runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0:
			want = fmt.Sprintf("secret file %s can be read by other users (mode %04o); run: chmod 600 %s", path, fi.Mode().Perm(), path)
		case len(contents) > MaxLen+2:
			want = fmt.Sprintf("secret file %s is %d bytes, more than a secret (%d at most)", path, len(contents), MaxLen)
		case len(trimmed) == 0:
			want = fmt.Sprintf("secret file %s: the secret is empty", path)
		case len(trimmed) > MaxLen:
			want = fmt.Sprintf("secret file %s: the secret is longer than %d bytes", path, MaxLen)
		}
		if want != "" {
			if err == nil {
				t.Fatalf("FromFile accepted %d bytes with mode %v; want %q", len(contents), fi.Mode(), want)
			}
			if err.Error() != want {
				t.Fatalf("FromFile error %q, want %q", err, want)
			}
			if !s.IsZero() {
				t.Fatal("FromFile failed with a non-zero secret")
			}
			return
		}
		if err != nil {
			t.Fatalf("FromFile refused %q with mode %v: %v", contents, fi.Mode(), err)
		}
		if !bytes.Equal(s.Bytes(), trimmed) {
			t.Fatalf("FromFile read %q from %q, want %q", s.Bytes(), contents, trimmed)
		}
		if out := fmt.Sprintf("%v %+v %s %q %x", s, s, s, s, s); strings.Count(out, redacted) != 5 || len(out) != 5*len(redacted)+4 {
			t.Fatalf("a secret from a file prints as %q", out)
		}
	})
}
