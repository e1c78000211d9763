// Package secretstore keeps the desktop client's shared secret in the OS
// keyring (the Secret Service on Linux, the Keychain on macOS, the
// Credential Manager on Windows, through go-keyring), never in plain text
// in the settings file.
//
// When there is no keyring to talk to (a headless Linux session without
// gnome-keyring or KWallet), Set writes the secret to a fallback file
// readable by its owner only (mode 0600, directory 0700) and says so with
// a *FallbackError, so that the UI can warn: it never falls back
// silently. Get reads the keyring first and then the fallback file, which
// it refuses if others could read it.
//
// Calls to the keyring are bounded (Store.Timeout): a locked keyring on a
// session without a password prompt would otherwise block forever. A call
// that times out keeps waiting in one background goroutine until the
// keyring answers; until then later calls fail fast instead of piling up.
//
// go-keyring takes and returns secrets as Go strings, which cannot be
// zeroed; this package keeps no copy of its own and never logs or prints a
// secret, in errors included.
package secretstore

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/zalando/go-keyring"

	"github.com/qtunnel/qtunnel/core/secret"
)

// DefaultTimeout bounds one keyring call when Store.Timeout is zero. It
// leaves time for a user to answer an unlock prompt.
const DefaultTimeout = 30 * time.Second

// Where says where a secret is kept.
type Where int

// Places. The zero Where means "nowhere" (an error was returned).
const (
	WhereKeyring Where = iota + 1 // the OS keyring
	WhereFile                     // the fallback file, in plain text
)

// String names the place in words for the UI.
func (w Where) String() string {
	switch w {
	case WhereKeyring:
		return "the OS keyring"
	case WhereFile:
		return "a plain-text file"
	default:
		return "nowhere"
	}
}

// ErrNotFound means no secret is stored, in the keyring or in the fallback
// file. Errors returned by Get match it with errors.Is.
var ErrNotFound = errors.New("no secret is stored")

// FallbackError is what Set returns, together with WhereFile, when the
// keyring was unavailable and the secret was written to the fallback file
// instead. The secret IS stored: show the message as a warning, not as a
// failure. Cause is why the keyring could not be used.
type FallbackError struct {
	File  string
	Cause error
}

func (e *FallbackError) Error() string {
	return fmt.Sprintf("%v: the secret was written to %s (mode 0600) instead", e.Cause, e.File)
}

func (e *FallbackError) Unwrap() error { return e.Cause }

// Store is one secret: the keyring item Service/Account, and the file used
// when the keyring is unavailable. A Store holds no state; its zero
// Timeout means DefaultTimeout.
type Store struct {
	// Service and Account name the keyring item (e.g. "qtunnel" and
	// "client"); both are required.
	Service, Account string
	// FallbackFile is where the secret goes when the keyring is
	// unavailable; "" means never write it to a file (Set fails instead).
	FallbackFile string
	// Timeout bounds each keyring call; 0 means DefaultTimeout.
	Timeout time.Duration
}

func (s Store) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return DefaultTimeout
}

func (s Store) check() error {
	if s.Service == "" || s.Account == "" {
		return errors.New("secretstore: the keyring item needs a service and an account name")
	}
	return nil
}

// Set stores secret in the keyring and removes any fallback file left from
// an earlier time without a keyring, so that no plain-text copy lingers.
// If the keyring is unavailable and FallbackFile is set, it writes the
// file instead and returns WhereFile with a *FallbackError saying why.
// Unavailable (ErrUnavailable) means no keyring could be reached or used:
// no Secret Service or D-Bus session, a locked keyring that cannot be
// unlocked here, a Keychain or Credential Manager that refuses. A keyring
// that does not answer in time (a password prompt may still be open), or
// that refuses the secret as too long, is not unavailable: Set then
// returns the error and writes nothing.
func (s Store) Set(b []byte) (Where, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return 0, errors.New("secretstore: the secret is empty")
	}
	if len(b) > secret.MaxLen {
		return 0, fmt.Errorf("secretstore: the secret is longer than %d bytes", secret.MaxLen)
	}
	kerr := keyringSet(s.timeout(), s.Service, s.Account, b)
	if kerr == nil {
		if s.FallbackFile != "" {
			if err := os.Remove(s.FallbackFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return WhereKeyring, fmt.Errorf("secretstore: the secret is in the OS keyring, but the old plain-text copy %s could not be removed: %w", s.FallbackFile, err)
			}
		}
		return WhereKeyring, nil
	}
	if !unavailable(kerr) {
		return 0, fmt.Errorf("secretstore: could not store the secret in the OS keyring: %w", kerr)
	}
	if s.FallbackFile == "" {
		return 0, fmt.Errorf("secretstore: could not store the secret: %w", kerr)
	}
	if err := writeFile(s.FallbackFile, b); err != nil {
		return 0, fmt.Errorf("secretstore: %w, and writing the secret to %s failed too: %w", kerr, s.FallbackFile, err)
	}
	return WhereFile, &FallbackError{File: s.FallbackFile, Cause: kerr}
}

// Get returns the secret from the keyring or, failing that, from the
// fallback file. It refuses a fallback file that others could read (or
// that someone else owns), saying so. The error matches ErrNotFound when
// neither place holds a secret (the keyring being unavailable counts as
// not holding it; the message then says so too).
func (s Store) Get() ([]byte, Where, error) {
	if err := s.check(); err != nil {
		return nil, 0, err
	}
	b, kerr := keyringGet(s.timeout(), s.Service, s.Account)
	if kerr == nil {
		return b, WhereKeyring, nil
	}
	notFound := errors.Is(kerr, keyring.ErrNotFound)
	if !notFound && !unavailable(kerr) {
		// The keyring is there but failed: do not hide that behind an
		// older copy in a file.
		return nil, 0, fmt.Errorf("secretstore: could not read the secret from the OS keyring: %w", kerr)
	}
	if s.FallbackFile != "" {
		b, err := readFile(s.FallbackFile)
		if err == nil {
			return b, WhereFile, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, 0, fmt.Errorf("secretstore: %w", err)
		}
	}
	if notFound {
		return nil, 0, ErrNotFound
	}
	return nil, 0, fmt.Errorf("secretstore: %w (%w, and there is no fallback file)", ErrNotFound, kerr)
}

// Delete removes the secret from the keyring and the fallback file. A
// secret that is in neither place is not an error, nor is a keyring that
// is unavailable (nothing can have been stored there this session).
func (s Store) Delete() error {
	if err := s.check(); err != nil {
		return err
	}
	var errs []error
	if kerr := keyringDelete(s.timeout(), s.Service, s.Account); kerr != nil &&
		!errors.Is(kerr, keyring.ErrNotFound) && !unavailable(kerr) {
		errs = append(errs, fmt.Errorf("secretstore: could not delete the secret from the OS keyring: %w", kerr))
	}
	if s.FallbackFile != "" {
		if err := os.Remove(s.FallbackFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("secretstore: could not delete %s: %w", s.FallbackFile, err))
		}
	}
	return errors.Join(errs...)
}

// probeService and probeAccount name an item that is never stored: looking
// it up tells whether the keyring answers.
const (
	probeService = "qtunnel-keyring-probe"
	probeAccount = "probe"
)

// Available returns nil if the OS keyring answers, and otherwise why not in
// plain words. It looks up an item that does not exist: "not found" means
// the keyring works.
func Available() error {
	_, err := keyringGet(DefaultTimeout, probeService, probeAccount)
	if err == nil || errors.Is(err, keyring.ErrNotFound) {
		return nil
	}
	return fmt.Errorf("secretstore: the OS keyring is unavailable: %w", err)
}
