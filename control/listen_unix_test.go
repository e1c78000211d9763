//go:build unix

package control

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestListenCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(shortTempDir(t), "ctl")
	path := filepath.Join(dir, "client.sock")
	old := syscall.Umask(0o177) // a hostile umask: Listen must not depend on it
	ln, err := Listen(path)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %04o, want 0700", fi.Mode().Perm())
	}
	fi, err = os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("Close left the socket file: %v", err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "client.sock")
	makeStaleSocket(t, path)
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln.Close()
}

func TestListenRefusesLiveSocket(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "client.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln2, err := Listen(path)
	if err == nil {
		ln2.Close()
		t.Fatal("a second Listen on a live socket succeeded")
	}
	want := "another qtunnel is already running with control socket " + path
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("the live socket file is gone: %v", err)
	}
}

func TestListenRefusesUnsafeDir(t *testing.T) {
	base := shortTempDir(t)

	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := Listen(filepath.Join(open, "client.sock"))
	if err == nil || !strings.Contains(err.Error(), "writable by other users") || !strings.Contains(err.Error(), "swap the socket") {
		t.Errorf("Listen in a 0777 directory: %v", err)
	}

	// Readable by others is fine: only writing lets one swap the socket.
	readable := filepath.Join(base, "readable")
	if err := os.Mkdir(readable, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(filepath.Join(readable, "client.sock"))
	if err != nil {
		t.Errorf("Listen in a 0755 directory: %v", err)
	} else {
		ln.Close()
	}

	link := filepath.Join(base, "link")
	if err := os.Symlink(readable, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(filepath.Join(link, "client.sock")); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Listen in a symlinked directory: %v", err)
	}

	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(filepath.Join(file, "client.sock")); err == nil {
		t.Error("Listen under a regular file succeeded")
	}

	notSocket := filepath.Join(readable, "server.sock")
	if err := os.WriteFile(notSocket, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(notSocket); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(notSocket); string(b) != "keep me" {
		t.Error("Listen clobbered a regular file")
	}

	long := filepath.Join(base, strings.Repeat("x", 120), "client.sock")
	if _, err := Listen(long); err == nil || !strings.Contains(err.Error(), "long") {
		t.Errorf("Listen with a %d-byte path: %v", len(long), err)
	}
}

func TestListenRefusesOtherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory to another user")
	}
	dir := filepath.Join(shortTempDir(t), "theirs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err := Listen(filepath.Join(dir, "client.sock"))
	if err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("Listen in another user's directory: %v", err)
	}
}
