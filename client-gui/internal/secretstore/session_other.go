//go:build !(linux || freebsd || openbsd || netbsd || dragonfly)

package secretstore

import (
	"errors"
	"runtime"

	"github.com/zalando/go-keyring"
)

// sessionCheck has nothing to check up front on macOS and Windows: the
// keyring is part of every user session.
func sessionCheck() error { return nil }

// classifyPlatform explains a Keychain or Credential Manager failure. Any
// failure counts as unavailable: the Keychain refuses, for instance, when
// it is locked and nobody can be asked (an ssh session).
func classifyPlatform(err error) error {
	name := "the OS keyring"
	switch runtime.GOOS {
	case "darwin":
		name = "the macOS Keychain"
	case "windows":
		name = "the Windows Credential Manager"
	}
	if errors.Is(err, keyring.ErrUnsupportedPlatform) {
		return &unavailableError{reason: "there is no OS keyring support on " + runtime.GOOS, err: err}
	}
	return &unavailableError{reason: name + " failed", err: err, detail: true}
}
