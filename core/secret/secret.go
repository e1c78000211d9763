// Package secret holds the shared secret: where it comes from (a flag, a
// file, the environment, or freshly generated), how strong it is, and a type
// that refuses to print it, so that it cannot reach a log line by accident.
package secret

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
)

// EnvVar is the environment variable a secret may be read from.
const EnvVar = "QTUNNEL_SECRET"

// GeneratedBytes is how many random bytes Generate draws (256 bits).
const GeneratedBytes = 32

// MaxLen bounds a secret's length; a longer one is almost surely a wrong file.
const MaxLen = 4096

// redacted is what a Secret prints as.
const redacted = "[redacted]"

// Secret is a shared secret. Its String, GoString, Format and LogValue
// methods print "[redacted]"; use Bytes to reach the value. The bytes sit
// behind a pointer so that even a Secret in an unexported struct field,
// which fmt prints without calling its methods, shows as an address.
type Secret struct {
	v *value
}

type value struct{ b []byte }

// New wraps b, which must not be empty. It keeps its own copy.
func New(b []byte) (Secret, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return Secret{}, errors.New("the secret is empty")
	}
	if len(b) > MaxLen {
		return Secret{}, fmt.Errorf("the secret is longer than %d bytes", MaxLen)
	}
	return Secret{v: &value{b: bytes.Clone(b)}}, nil
}

// Bytes returns the secret's value. Callers must not modify or log it.
func (s Secret) Bytes() []byte {
	if s.v == nil {
		return nil
	}
	return s.v.b
}

// IsZero reports whether s holds no secret.
func (s Secret) IsZero() bool { return len(s.Bytes()) == 0 }

// String implements fmt.Stringer without revealing the value.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer without revealing the value.
func (s Secret) GoString() string { return redacted }

// Format implements fmt.Formatter so that every verb, %x included, prints
// the placeholder.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText keeps the secret out of any encoder (JSON, YAML) by accident.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Generate returns a fresh 256-bit secret in unpadded base64url (43
// characters), ready to paste into a file or an environment variable.
func Generate() (string, error) {
	var b [GeneratedBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// FromFile reads a secret from path. Surrounding white space (a trailing
// newline from an editor or echo) is removed. On Unix-like systems a file
// that its group or others may read is refused, because the secret would not
// be secret; the error says how to fix it.
func FromFile(path string) (Secret, error) {
	// Check before opening: opening a FIFO would block until a writer comes.
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return Secret{}, fmt.Errorf("secret file %s is not a regular file", path)
	}
	f, err := os.Open(path) // #nosec G304 -- the secret file the operator named: reading it is the point
	if err != nil {
		return Secret{}, fmt.Errorf("open secret file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Secret{}, fmt.Errorf("stat secret file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return Secret{}, fmt.Errorf("secret file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return Secret{}, fmt.Errorf("secret file %s can be read by other users (mode %04o); run: chmod 600 %s", path, perm, path)
	}
	if fi.Size() > MaxLen+2 {
		return Secret{}, fmt.Errorf("secret file %s is %d bytes, more than a secret (%d at most)", path, fi.Size(), MaxLen)
	}
	buf, err := io.ReadAll(io.LimitReader(f, MaxLen+2))
	if err != nil {
		return Secret{}, fmt.Errorf("read secret file %s: %w", path, err)
	}
	s, err := New(bytes.TrimSpace(buf))
	clear(buf)
	if err != nil {
		return Secret{}, fmt.Errorf("secret file %s: %w", path, err)
	}
	return s, nil
}

// Source names where a secret came from, for messages.
type Source string

// Sources of a secret.
const (
	SourceFlag Source = "the -secret flag"
	SourceFile Source = "a secret file"
	SourceEnv  Source = "the " + EnvVar + " environment variable"
)

// Resolve picks the secret from exactly one of its sources: the flag value,
// the file path, or the environment value (empty strings mean "not given").
// Giving more than one is an error, so that no one wonders which one won.
func Resolve(flagValue, filePath, envValue string) (Secret, Source, error) {
	given := 0
	for _, v := range []string{flagValue, filePath, envValue} {
		if v != "" {
			given++
		}
	}
	switch {
	case given == 0:
		return Secret{}, "", ErrNoSecret
	case given > 1:
		return Secret{}, "", ErrManySources
	case filePath != "":
		s, err := FromFile(filePath)
		return s, SourceFile, err
	case envValue != "":
		s, err := New([]byte(envValue))
		return s, SourceEnv, err
	default:
		s, err := New([]byte(flagValue))
		return s, SourceFlag, err
	}
}

// ErrManySources is returned by Resolve when more than one source gives a secret.
var ErrManySources = errors.New("the secret is given more than one way (-secret, -secret-file, " + EnvVar + "); give exactly one")

// ErrNoSecret is returned by Resolve when no source gives a secret.
var ErrNoSecret = errors.New("no secret given: use -secret-file=PATH or " + EnvVar + " (make one with -generate-secret)")

// MinStrongBits is the estimated strength below which a secret is called weak.
// The proofs on the wire are HMACs: whoever sees one (a man in the middle who
// the client talks to) can test guesses offline at GPU speed, so a secret must
// be far beyond what a guesser can enumerate.
const MinStrongBits = 100

// EstimateBits gives a generous upper bound on a secret's entropy: its length
// times log2 of the alphabet its character classes suggest. Real passwords
// score lower than this; a random secret scores about this.
func EstimateBits(b []byte) float64 {
	var lower, upper, digit, other bool
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= '0' && c <= '9':
			digit = true
		default:
			other = true
		}
	}
	alphabet := 0
	if lower {
		alphabet += 26
	}
	if upper {
		alphabet += 26
	}
	if digit {
		alphabet += 10
	}
	if other {
		alphabet += 33
	}
	if alphabet < 2 {
		return 0
	}
	return float64(distinctRunLen(b)) * math.Log2(float64(alphabet))
}

// distinctRunLen counts characters, not counting a character that repeats
// the one before it ("aaaa" is as weak as "a").
func distinctRunLen(b []byte) int {
	n := 0
	for i := range b {
		if i == 0 || b[i] != b[i-1] {
			n++
		}
	}
	return n
}

// Weak reports whether s is too weak to resist offline guessing.
func Weak(s Secret) bool { return EstimateBits(s.Bytes()) < MinStrongBits }
