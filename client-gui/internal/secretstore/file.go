package secretstore

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/qtunnel/qtunnel/core/secret"
)

// writeFile writes b to path readable by its owner only: the directory is
// created with mode 0700 if missing, and the file is written under a
// temporary name with mode 0600 and then renamed over path, so that a
// reader never sees half a secret and no copy is ever readable by others.
func writeFile(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create the directory: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// CreateTemp already makes the file 0600; say so explicitly anyway
	// in case a future change would loosen it.
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}

// readFile reads the fallback file, refusing it if it is not a regular
// file, if someone else owns it, or if its group or others may read or
// write it. The error matches fs.ErrNotExist when there is no file.
func readFile(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("read the secret from %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("refusing to read the secret from %s: it is not a regular file (%v)", path, fi.Mode().Type())
	}
	if err := checkPrivate(path, fi); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the secret from %s: %w", path, err)
	}
	if len(b) > secret.MaxLen {
		clear(b)
		return nil, fmt.Errorf("refusing the secret in %s: it is longer than %d bytes (a wrong file?)", path, secret.MaxLen)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("the secret file %s is empty", path)
	}
	return b, nil
}
