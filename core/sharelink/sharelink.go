// Package sharelink reads and writes share links: the one line a server
// operator gives a user so that a client can be set up by pasting it, or
// by scanning it as a QR code. A link looks like
//
//	qtunnel://vpn.example.com:443?transport=quic&pin=sha256:3f5a…&sni=vpn.example.com&target=ssh&name=Office#secret=q83vEjRW…
//
// and is made of:
//
//   - the scheme qtunnel and the server's host:port (a host name or an IP
//     address, IPv6 in brackets; the port 1 to 65535);
//   - transport (required): quic or tcp, which both ends must agree on;
//   - pin (optional): the server certificate's SHA-256 fingerprint,
//     "sha256:" and 64 hex digits;
//   - sni (optional): the TLS server name the client sends;
//   - target (optional): the target name the client asks the server for;
//   - name (optional): a label for the tunnel in the user's list;
//   - secret (optional), after #: the shared secret in base64url without
//     padding (RFC 4648 section 5).
//
// Query values are percent-encoded; no other keys are allowed, each at
// most once, so that a typo is an error rather than a setting silently
// ignored. Links are at most MaxLinkLen bytes.
//
// The secret sits in the fragment to keep it visibly apart from the
// settings, and because browsers never send a fragment to a web server,
// should the link be opened in one. A link without it carries no secret:
// the user gets the secret some other way, and the link alone can connect
// to nothing.
//
// A link that holds the secret must be treated like the secret itself:
// anyone who has it can use the tunnel. Send it only over a channel you
// would trust with the secret, keep it out of tickets, chats and logs, and
// treat its QR code on a screen the same way. Link.String returns the
// whole link; printing a Link with fmt or log/slog leaves the secret out.
package sharelink

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/qtunnel/qtunnel/core/cert"
	"github.com/qtunnel/qtunnel/core/proto"
	"github.com/qtunnel/qtunnel/core/secret"
)

// Scheme is a share link's URL scheme.
const Scheme = "qtunnel"

// Limits. Any Link that passes Validate prints as a link within
// MaxLinkLen, so whatever String writes, Parse reads back.
const (
	// MaxLinkLen bounds a whole link.
	MaxLinkLen = 8192
	// MaxSecretLen bounds the decoded secret; it is the engine's own limit.
	MaxSecretLen = secret.MaxLen
	// MaxNameLen bounds the label, in bytes.
	MaxNameLen = 128
	// maxHostLen is the longest DNS name (RFC 1035).
	maxHostLen = 253
)

// Transports.
const (
	TransportQUIC = "quic"
	TransportTCP  = "tcp"
)

// Query keys and the fragment's prefix.
const (
	keyTransport     = "transport"
	keyPin           = "pin"
	keySNI           = "sni"
	keyTarget        = "target"
	keyName          = "name"
	fragSecretPrefix = "secret="
)

// secretEncoding is base64url without padding; Strict rejects the
// non-canonical encodings, so one secret has exactly one spelling.
var secretEncoding = base64.RawURLEncoding.Strict()

// ErrInvalid is wrapped by every error Parse and Validate return.
var ErrInvalid = errors.New("invalid share link")

// Link is what a share link says.
type Link struct {
	// Server is the server's address, host:port.
	Server string
	// Transport is TransportQUIC or TransportTCP.
	Transport string
	// Pin is the server certificate's fingerprint, "sha256:" and 64 hex
	// digits, or "" for none.
	Pin string
	// SNI is the TLS server name to send, "" for the default.
	SNI string
	// Target is the target name to request, "" for the server's default.
	Target string
	// Secret is the shared secret, or nil if the link does not carry it
	// (the user is then told to get it separately).
	Secret []byte
	// Name is a label for the user, "" for none.
	Name string
}

// String returns the link, with the secret if l has one. Fields are
// written as they are, except that a well-formed pin is written in its
// canonical form; call Validate first to be sure Parse will accept it.
func (l Link) String() string { return l.format(true) }

// Redacted returns the link without its secret, for logs and for showing
// which server a link points to.
func (l Link) Redacted() string { return l.format(false) }

// Format implements fmt.Formatter so that every fmt verb prints the link
// without its secret: a Link in a log line must not leak it. String
// still returns the whole link, for the one place that means to.
func (l Link) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(l.Redacted())) }

// LogValue implements slog.LogValuer, leaving the secret out.
func (l Link) LogValue() slog.Value { return slog.StringValue(l.Redacted()) }

func (l Link) format(withSecret bool) string {
	var b strings.Builder
	b.WriteString(Scheme + "://")
	b.WriteString(l.Server)
	// A fixed order, transport first, so that links read alike.
	b.WriteString("?" + keyTransport + "=")
	b.WriteString(escape(l.Transport))
	pin := l.Pin
	if f, err := cert.ParsePin(pin); err == nil {
		pin = f.String()
	}
	for _, kv := range [...][2]string{{keyPin, pin}, {keySNI, l.SNI}, {keyTarget, l.Target}, {keyName, l.Name}} {
		if kv[1] != "" {
			b.WriteString("&" + kv[0] + "=")
			b.WriteString(escape(kv[1]))
		}
	}
	if withSecret && len(l.Secret) > 0 {
		b.WriteString("#" + fragSecretPrefix)
		b.WriteString(secretEncoding.EncodeToString(l.Secret))
	}
	return b.String()
}

// escape percent-encodes a query value. It leaves the unreserved
// characters and ':', '@' and '/' as they are (RFC 3986 allows them in a
// query), so that pins and host names stay readable; url.QueryEscape
// would write "sha256%3A…".
func escape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == ':', c == '@', c == '/':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

// invalid returns an error that wraps ErrInvalid.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Parse reads a share link. It is strict: an unknown or repeated key, a
// malformed value or a missing transport is an error, so that a damaged
// link is refused rather than half used. Surrounding white space is
// ignored (links are pasted). The errors never quote the secret.
func Parse(s string) (Link, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxLinkLen {
		return Link{}, invalid("it is %d bytes long, more than %d", len(s), MaxLinkLen)
	}
	if len(s) < len(Scheme)+3 || !strings.EqualFold(s[:len(Scheme)+3], Scheme+"://") {
		if scheme, _, ok := strings.Cut(s, "://"); ok && len(scheme) < 20 {
			return Link{}, invalid("it starts with %q, not %s://", scheme+"://", Scheme)
		}
		return Link{}, invalid("it does not start with %s://", Scheme)
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Error quotes the whole input, secret included; keep only
		// the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Link{}, fmt.Errorf("%w: it is not a well-formed URL: %w", ErrInvalid, err)
	}
	if u.User != nil {
		return Link{}, invalid("it has a user name before the server address; a share link has none")
	}
	if u.Path != "" && u.Path != "/" {
		return Link{}, invalid("it has a path (%q) after the server address; a share link has none", u.Path)
	}

	var l Link
	l.Server = u.Host
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Link{}, fmt.Errorf("%w: the part after ? is malformed: %w", ErrInvalid, err)
	}
	fields := map[string]*string{
		keyTransport: &l.Transport,
		keyPin:       &l.Pin,
		keySNI:       &l.SNI,
		keyTarget:    &l.Target,
		keyName:      &l.Name,
	}
	for k, vs := range q {
		p, ok := fields[k]
		if !ok {
			return Link{}, invalid("unknown parameter %q (known: transport, pin, sni, target, name)", k)
		}
		if len(vs) > 1 {
			return Link{}, invalid("parameter %q appears %d times", k, len(vs))
		}
		if vs[0] == "" {
			return Link{}, invalid("parameter %q is empty; leave it out instead", k)
		}
		*p = vs[0]
	}
	if l.Transport == "" {
		return Link{}, invalid("it has no transport; add transport=quic or transport=tcp")
	}

	if u.Fragment != "" {
		enc, ok := strings.CutPrefix(u.Fragment, fragSecretPrefix)
		if !ok {
			return Link{}, invalid("the part after # must be %s followed by the secret", fragSecretPrefix)
		}
		if l.Secret, err = decodeSecret(enc); err != nil {
			return Link{}, err
		}
	}
	return l.normalize()
}

func decodeSecret(enc string) ([]byte, error) {
	if enc == "" {
		return nil, invalid("the secret after #%s is empty", fragSecretPrefix)
	}
	// Check the length before decoding, not after.
	if len(enc) > secretEncoding.EncodedLen(MaxSecretLen) {
		return nil, invalid("the secret is longer than %d bytes", MaxSecretLen)
	}
	b, err := secretEncoding.DecodeString(enc)
	if err != nil {
		// CorruptInputError gives an offset, never the secret's bytes.
		return nil, fmt.Errorf("%w: the secret is not valid base64url without padding: %w", ErrInvalid, err)
	}
	return b, nil
}

// Validate reports whether Parse would accept l.String(). A server
// operator's tool calls it before handing a link out.
func (l Link) Validate() error {
	_, err := l.normalize()
	return err
}

// normalize checks every field and returns l in canonical form: the port
// without leading zeros and the pin as "sha256:" and lower-case hex.
func (l Link) normalize() (Link, error) {
	server, err := checkServer(l.Server)
	if err != nil {
		return Link{}, err
	}
	l.Server = server
	if l.Transport != TransportQUIC && l.Transport != TransportTCP {
		return Link{}, invalid("transport %q: want %s or %s", l.Transport, TransportQUIC, TransportTCP)
	}
	if l.Pin != "" {
		f, err := cert.ParsePin(l.Pin)
		if err != nil {
			return Link{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		l.Pin = f.String()
	}
	if l.SNI != "" && !validHostname(l.SNI) {
		return Link{}, invalid("sni %q is not a host name", l.SNI)
	}
	if l.Target != "" && (!utf8.ValidString(l.Target) || !proto.ValidTarget(l.Target)) {
		return Link{}, invalid("target %q: want at most %d bytes of text without control characters", l.Target, proto.MaxTargetLen)
	}
	if l.Name != "" && !validLabel(l.Name) {
		return Link{}, invalid("name %q: want at most %d bytes of text without control characters", l.Name, MaxNameLen)
	}
	if len(l.Secret) > MaxSecretLen {
		return Link{}, invalid("the secret is longer than %d bytes", MaxSecretLen)
	}
	if len(l.Secret) == 0 {
		// nil and empty both mean "no secret"; one spelling for both.
		l.Secret = nil
	}
	return l, nil
}

// checkServer checks host:port and returns it in canonical form.
func checkServer(hostport string) (string, error) {
	if hostport == "" {
		return "", invalid("it has no server address")
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", invalid("server address %q: want host:port (IPv6 in brackets)", hostport)
	}
	if port == "" {
		return "", invalid("server address %q has no port", hostport)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", invalid("server port %q: want a number from 1 to 65535", port)
	}
	if host == "" {
		return "", invalid("server address %q has no host", hostport)
	}
	if strings.HasPrefix(hostport, "[") {
		// Brackets are for IPv6 only, and a zone means nothing to the
		// user who receives the link.
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", invalid("server address %q: only an IPv6 address without a zone goes in brackets", hostport)
		}
	} else if !validHostname(host) {
		return "", invalid("server host %q is not a host name or IP address (write international names in their xn-- form)", host)
	}
	return net.JoinHostPort(host, strconv.FormatUint(p, 10)), nil
}

// validHostname accepts DNS names of letters, digits, '-' and '_' in
// dot-separated labels of 1 to 63 bytes (and so dotted IPv4 addresses).
func validHostname(h string) bool {
	if h == "" || len(h) > maxHostLen {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// validLabel accepts a short UTF-8 text without control or format
// characters: a bidirectional override (U+202E) or a zero-width one could
// make a link's name display as something it is not.
func validLabel(s string) bool {
	if len(s) > MaxNameLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}
