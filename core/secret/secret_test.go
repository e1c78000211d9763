package secret

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// sentinel is a secret value easy to spot in any output, in several forms.
const sentinel = "hunter2-TOPSECRET-Zq9"

// leaks reports whether out shows the secret in plain, hex or as a byte list.
func leaks(out string) bool {
	forms := []string{
		sentinel,
		fmt.Sprintf("%x", sentinel),
		fmt.Sprintf("%X", sentinel),
		fmt.Sprint([]byte(sentinel)),
		"TOPSECRET",
		base64.StdEncoding.EncodeToString([]byte(sentinel)),
	}
	for _, f := range forms {
		if strings.Contains(out, f) {
			return true
		}
	}
	return false
}

func mustNew(t *testing.T, s string) Secret {
	t.Helper()
	sec, err := New([]byte(s))
	if err != nil {
		t.Fatalf("New(%q): %v", s, err)
	}
	return sec
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		wantErr bool
	}{
		{"nil", nil, true},
		{"empty", []byte{}, true},
		{"space", []byte(" "), true},
		{"whitespace", []byte(" \t\r\n\v\f "), true},
		{"one char", []byte("x"), false},
		{"inner spaces kept", []byte(" a b "), false},
		{"binary", []byte{0, 1, 2, 0xff}, false},
		{"max length", bytes.Repeat([]byte("a"), MaxLen), false},
		{"too long", bytes.Repeat([]byte("a"), MaxLen+1), true},
		{"far too long", bytes.Repeat([]byte("a"), 1<<20), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("New(%d bytes) succeeded, want an error", len(tt.in))
				}
				if !s.IsZero() {
					t.Fatalf("on error the secret is not zero")
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if s.IsZero() {
				t.Fatalf("IsZero on a real secret")
			}
			if !bytes.Equal(s.Bytes(), tt.in) {
				t.Fatalf("Bytes() = %q, want %q (New must not trim or change it)", s.Bytes(), tt.in)
			}
		})
	}
}

func TestNewKeepsCopy(t *testing.T) {
	in := []byte("original-secret")
	s, err := New(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 'X'
	}
	if got := string(s.Bytes()); got != "original-secret" {
		t.Fatalf("changing the caller's slice changed the secret to %q", got)
	}
}

func TestZeroSecret(t *testing.T) {
	var s Secret
	if !s.IsZero() {
		t.Fatal("zero Secret is not IsZero")
	}
	if len(s.Bytes()) != 0 {
		t.Fatal("zero Secret has bytes")
	}
}

func TestFormatNeverPrintsSecret(t *testing.T) {
	s := mustNew(t, sentinel)
	type Exported struct {
		Name   string
		Secret Secret
		Ptr    *Secret
	}
	wrapped := Exported{Name: "cfg", Secret: s, Ptr: &s}
	verbs := []string{"%v", "%s", "%x", "%X", "%q", "%+v", "%#v", "%d", "%T %v", "%10s", "%-20q", "%08x"}
	values := []struct {
		name string
		v    any
	}{
		{"value", s},
		{"pointer", &s},
		{"slice", []Secret{s, s}},
		{"map", map[string]Secret{"k": s}},
		{"exported field", wrapped},
		{"pointer to struct", &wrapped},
	}
	for _, val := range values {
		for _, verb := range verbs {
			out := fmt.Sprintf(verb, val.v)
			if leaks(out) {
				t.Errorf("%s with %q printed the secret: %s", val.name, verb, out)
			}
			if val.name == "value" && verb != "%T %v" && !strings.Contains(out, redacted) {
				t.Errorf("%s with %q = %q, want it to say %q", val.name, verb, out, redacted)
			}
		}
	}
	for _, out := range []string{s.String(), s.GoString(), fmt.Sprint(s), fmt.Sprintln(s)} {
		if leaks(out) || !strings.Contains(out, redacted) {
			t.Errorf("output %q", out)
		}
	}
	if err := fmt.Errorf("wrap %v: %w", s, errors.New("x")); leaks(err.Error()) {
		t.Errorf("error text leaks: %v", err)
	}
}

func TestSlogNeverPrintsSecret(t *testing.T) {
	s := mustNew(t, sentinel)
	handlers := []struct {
		name string
		make func(*bytes.Buffer) slog.Handler
	}{
		{"text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
		{"json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
	}
	for _, h := range handlers {
		t.Run(h.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(h.make(&buf))
			log.Info("starting", "secret", s)
			log.Info("pointer", "secret", &s)
			log.Info("attr", slog.Any("secret", s))
			log.Info("group", slog.Group("cfg", slog.Any("secret", s), "n", 1))
			log.With("secret", s).Warn("with")
			log.Info("struct", "cfg", struct{ Secret Secret }{s})
			out := buf.String()
			if leaks(out) {
				t.Fatalf("slog %s output leaks the secret:\n%s", h.name, out)
			}
			if n := strings.Count(out, redacted); n < 5 {
				t.Fatalf("want %q at least 5 times, got %d in:\n%s", redacted, n, out)
			}
		})
	}
}

func TestJSONNeverPrintsSecret(t *testing.T) {
	s := mustNew(t, sentinel)
	tests := []struct {
		name string
		v    any
	}{
		{"value", s},
		{"pointer", &s},
		{"struct", struct{ Secret Secret }{s}},
		{"map value", map[string]Secret{"k": s}},
		{"slice", []Secret{s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			if leaks(string(b)) || !strings.Contains(string(b), redacted) {
				t.Fatalf("json.Marshal = %s", b)
			}
		})
	}
}

func TestGenerate(t *testing.T) {
	seen := map[string]bool{}
	for range 8 {
		g, err := Generate()
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
		if len(g) != 43 {
			t.Fatalf("Generate() = %q, %d chars, want 43", g, len(g))
		}
		for _, c := range g {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok {
				t.Fatalf("Generate() = %q has %q, not base64url", g, c)
			}
		}
		raw, err := base64.RawURLEncoding.DecodeString(g)
		if err != nil {
			t.Fatalf("decode %q: %v", g, err)
		}
		if len(raw) != GeneratedBytes {
			t.Fatalf("decodes to %d bytes, want %d", len(raw), GeneratedBytes)
		}
		if seen[g] {
			t.Fatalf("Generate returned %q twice", g)
		}
		seen[g] = true
		s, err := New([]byte(g))
		if err != nil {
			t.Fatalf("New(Generate()): %v", err)
		}
		if Weak(s) {
			t.Fatalf("a generated secret %q is called weak (%.1f bits)", g, EstimateBits([]byte(g)))
		}
	}
}

func writeFile(t *testing.T, dir, name string, data []byte, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, perm); err != nil {
		t.Fatal(err)
	}
	// WriteFile is subject to the umask; set the mode exactly.
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFromFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes are not checked on Windows")
	}
	dir := t.TempDir()
	tests := []struct {
		name    string
		data    []byte
		perm    os.FileMode
		want    string
		errHas  string // when non-empty, an error containing this is expected
		wantErr bool
	}{
		{name: "trailing newline", data: []byte("s3cret-value\n"), perm: 0o600, want: "s3cret-value"},
		{name: "CRLF", data: []byte("s3cret-value\r\n"), perm: 0o600, want: "s3cret-value"},
		{name: "surrounding space", data: []byte("  s3cret value \n\n"), perm: 0o600, want: "s3cret value"},
		{name: "no newline", data: []byte("abc"), perm: 0o600, want: "abc"},
		{name: "owner read only", data: []byte("abc\n"), perm: 0o400, want: "abc"},
		{name: "mode 0644", data: []byte("abc\n"), perm: 0o644, errHas: "chmod 600", wantErr: true},
		{name: "mode 0640", data: []byte("abc\n"), perm: 0o640, errHas: "chmod 600", wantErr: true},
		{name: "mode 0604", data: []byte("abc\n"), perm: 0o604, errHas: "chmod 600", wantErr: true},
		{name: "mode 0620", data: []byte("abc\n"), perm: 0o620, errHas: "chmod 600", wantErr: true},
		{name: "empty", data: nil, perm: 0o600, errHas: "empty", wantErr: true},
		{name: "only newline", data: []byte("\n"), perm: 0o600, errHas: "empty", wantErr: true},
		{name: "max length with newline", data: append(bytes.Repeat([]byte("k"), MaxLen), '\r', '\n'), perm: 0o600, want: strings.Repeat("k", MaxLen)},
		{name: "one byte over", data: bytes.Repeat([]byte("k"), MaxLen+1), perm: 0o600, wantErr: true},
		{name: "oversized", data: bytes.Repeat([]byte("k"), MaxLen+3), perm: 0o600, wantErr: true},
		{name: "far oversized", data: bytes.Repeat([]byte("k"), 1<<20), perm: 0o600, wantErr: true},
		// The size limit must refuse, never silently cut: reading only the
		// first MaxLen+2 bytes of this file would give the secret "abc".
		{name: "oversized with a short secret in front", data: []byte("abc" + strings.Repeat(" ", MaxLen) + "tail"), perm: 0o600, wantErr: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, dir, fmt.Sprintf("secret%d", i), tt.data, tt.perm)
			s, err := FromFile(p)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("FromFile succeeded, want an error")
				}
				if !s.IsZero() {
					t.Fatalf("on error the secret is not zero")
				}
				if tt.errHas != "" && !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %q, want it to contain %q", err, tt.errHas)
				}
				if leaks(err.Error()) {
					t.Fatalf("error leaks the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromFile: %v", err)
			}
			if got := string(s.Bytes()); got != tt.want {
				t.Fatalf("FromFile = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFromFileModeErrorNamesPath(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes are not checked on Windows")
	}
	p := writeFile(t, t.TempDir(), "s", []byte(sentinel+"\n"), 0o644)
	_, err := FromFile(p)
	if err == nil {
		t.Fatal("FromFile accepted a 0644 file")
	}
	if want := "chmod 600 " + p; !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %q, want it to contain %q", err, want)
	}
	if leaks(err.Error()) {
		t.Fatalf("error leaks the secret: %v", err)
	}
}

func TestFromFileNotRegular(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := FromFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("FromFile(directory) err = %v, want 'not a regular file'", err)
	}
	missing := filepath.Join(dir, "missing")
	if _, err := FromFile(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("FromFile(missing) err = %v, want os.ErrNotExist", err)
	}
}

func TestFromFileFollowsSymlinkToPrivateFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	dir := t.TempDir()
	target := writeFile(t, dir, "real", []byte("via-link\n"), 0o600)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	s, err := FromFile(link)
	if err != nil {
		t.Fatalf("FromFile(symlink): %v", err)
	}
	if string(s.Bytes()) != "via-link" {
		t.Fatalf("got %q", s.Bytes())
	}
	// The mode checked is the target's, not the link's (always 0777).
	if err := os.Chmod(target, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := FromFile(link); err == nil {
		t.Fatal("FromFile(symlink to 0644 file) succeeded")
	}
}

func TestResolve(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes are not checked on Windows")
	}
	dir := t.TempDir()
	file := writeFile(t, dir, "s", []byte("from-file\n"), 0o600)
	openFile := writeFile(t, dir, "open", []byte("from-file\n"), 0o644)
	tests := []struct {
		name              string
		flag, path, env   string
		want              string
		wantSrc           Source
		wantErr, wantNone bool
	}{
		{name: "none", wantErr: true, wantNone: true},
		{name: "flag", flag: "from-flag", want: "from-flag", wantSrc: SourceFlag},
		{name: "file", path: file, want: "from-file", wantSrc: SourceFile},
		{name: "env", env: "from-env", want: "from-env", wantSrc: SourceEnv},
		{name: "flag and file", flag: "a", path: file, wantErr: true},
		{name: "flag and env", flag: "a", env: "b", wantErr: true},
		{name: "file and env", path: file, env: "b", wantErr: true},
		{name: "all three", flag: "a", path: file, env: "b", wantErr: true},
		{name: "flag whitespace", flag: "   ", wantErr: true},
		{name: "env whitespace", env: "\n", wantErr: true},
		{name: "file missing", path: filepath.Join(dir, "nope"), wantErr: true},
		{name: "file too open", path: openFile, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, src, err := Resolve(tt.flag, tt.path, tt.env)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Resolve succeeded with %q from %s, want an error", s.Bytes(), src)
				}
				if got := errors.Is(err, ErrNoSecret); got != tt.wantNone {
					t.Fatalf("errors.Is(err, ErrNoSecret) = %v, want %v (err: %v)", got, tt.wantNone, err)
				}
				if !s.IsZero() {
					t.Fatalf("on error the secret is not zero")
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if src != tt.wantSrc {
				t.Fatalf("source = %q, want %q", src, tt.wantSrc)
			}
			if string(s.Bytes()) != tt.want {
				t.Fatalf("secret = %q, want %q", s.Bytes(), tt.want)
			}
		})
	}
}

func TestEstimateBitsAndWeak(t *testing.T) {
	gen, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in       string
		weak     bool
		min, max float64 // bounds on EstimateBits
	}{
		{in: "mysecret", weak: true, min: 1, max: 60},
		{in: "company-secret", weak: true, min: 50, max: MinStrongBits - 1},
		{in: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", weak: true, min: 0, max: 5},
		{in: "Password1!", weak: true, min: 30, max: 70},
		{in: "0123456789", weak: true, min: 30, max: 35},
		{in: "x", weak: true, min: 4, max: 5},
		{in: gen, weak: false, min: MinStrongBits, max: 300},
		{in: "correct horse battery staple, with digits 1234 and CAPS", weak: false, min: MinStrongBits, max: 400},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			bits := EstimateBits([]byte(tt.in))
			if bits < tt.min || bits > tt.max {
				t.Fatalf("EstimateBits(%q) = %.1f, want in [%.0f, %.0f]", tt.in, bits, tt.min, tt.max)
			}
			if got := Weak(mustNew(t, tt.in)); got != tt.weak {
				t.Fatalf("Weak(%q) = %v, want %v (%.1f bits)", tt.in, got, tt.weak, bits)
			}
		})
	}
}

// TestEstimateBitsFormula checks the documented formula: distinct-run
// length times log2 of the alphabet the character classes suggest (26 lower,
// 26 upper, 10 digits, 33 others).
func TestEstimateBitsFormula(t *testing.T) {
	tests := []struct {
		in       string
		runs     int
		alphabet float64
	}{
		{"abc", 3, 26},
		{"ABC", 3, 26},
		{"123", 3, 10},
		{"!?-", 3, 33},
		{"\xff\x00", 2, 33},
		{"aB", 2, 52},
		{"a1", 2, 36},
		{"a-", 2, 59},
		{"A1-", 3, 69},
		{"aA1-", 4, 95},
		{"aabbcc", 3, 26},
		{"abab", 4, 26},
	}
	for _, tt := range tests {
		want := float64(tt.runs) * math.Log2(tt.alphabet)
		if got := EstimateBits([]byte(tt.in)); math.Abs(got-want) > 1e-9 {
			t.Errorf("EstimateBits(%q) = %v, want %d * log2(%v) = %v", tt.in, got, tt.runs, tt.alphabet, want)
		}
	}
}

func TestEstimateBitsProperties(t *testing.T) {
	if got := EstimateBits(nil); got != 0 {
		t.Fatalf("EstimateBits(nil) = %v, want 0", got)
	}
	// Repeating a character adds nothing.
	if a, b := EstimateBits([]byte("ab")), EstimateBits([]byte("aaaabbbb")); a != b {
		t.Fatalf("EstimateBits(ab) = %v, EstimateBits(aaaabbbb) = %v; want equal", a, b)
	}
	// More character classes, more bits per character.
	if a, b := EstimateBits([]byte("abcdefgh")), EstimateBits([]byte("abcdEFG1")); !(b > a) {
		t.Fatalf("mixed classes %v not above lower case only %v", b, a)
	}
	// Longer, more bits.
	if a, b := EstimateBits([]byte("abcd")), EstimateBits([]byte("abcdefgh")); !(b > a) {
		t.Fatalf("longer %v not above shorter %v", b, a)
	}
}

// TestWeakZeroSecret: the zero Secret is the weakest there is.
func TestWeakZeroSecret(t *testing.T) {
	if !Weak(Secret{}) {
		t.Fatal("Weak(Secret{}) = false")
	}
}

func FuzzNewAndEstimate(f *testing.F) {
	f.Add([]byte("mysecret"))
	f.Add([]byte(" \t\n"))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0x00, 0x7f})
	f.Add([]byte("aaaaaaaaaaaaaaaaaaaa"))
	f.Fuzz(func(t *testing.T, b []byte) {
		bits := EstimateBits(b)
		if bits < 0 || math.IsNaN(bits) || math.IsInf(bits, 0) {
			t.Fatalf("EstimateBits(%q) = %v", b, bits)
		}
		// At most log2(95) bits per byte.
		if bits > float64(len(b))*6.6 {
			t.Fatalf("EstimateBits(%q) = %v, more than 6.6 bits per byte", b, bits)
		}
		s, err := New(b)
		if err != nil {
			if !s.IsZero() {
				t.Fatalf("New(%q) failed with a non-zero secret", b)
			}
			if len(bytes.TrimSpace(b)) != 0 && len(b) <= MaxLen {
				t.Fatalf("New(%q) refused a valid secret: %v", b, err)
			}
			return
		}
		if !bytes.Equal(s.Bytes(), b) {
			t.Fatalf("New(%q).Bytes() = %q", b, s.Bytes())
		}
		if Weak(s) != (bits < MinStrongBits) {
			t.Fatalf("Weak disagrees with EstimateBits (%v)", bits)
		}
		if out := fmt.Sprintf("%v|%s|%x|%q|%#v", s, s, s, s, s); out != strings.Repeat(redacted+"|", 4)+redacted {
			t.Fatalf("formatting printed %q", out)
		}
	})
}

// A Secret inside an unexported field is printed by fmt without calling its
// methods; the value must still not appear.
func TestUnexportedFieldNeverPrintsSecret(t *testing.T) {
	type config struct {
		name string
		sec  Secret
	}
	c := config{name: "x", sec: mustNew(t, sentinel)}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("cfg", "c", c)
	for _, out := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), logged.String()} {
		if leaks(out) {
			t.Errorf("secret leaked via unexported field: %s", out)
		}
	}
}

// Opening a FIFO for reading blocks until a writer comes; FromFile must
// refuse it without opening it.
func TestFromFileFIFO(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no FIFOs")
	}
	path := filepath.Join(t.TempDir(), "fifo")
	if err := mkfifo(path); err != nil {
		t.Skip("mkfifo:", err)
	}
	done := make(chan error, 1)
	go func() { _, err := FromFile(path); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("FromFile(fifo) = %v, want a not-a-regular-file error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("FromFile blocked on a FIFO")
	}
}
