package sharelink

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

const (
	testPin = "sha256:3f5a0c1d2e4b6a8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e"
	// testPinOpenSSL is testPin as openssl prints it.
	testPinOpenSSL = "SHA256:3F:5A:0C:1D:2E:4B:6A:8C:9D:0E:1F:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08:19:2A:3B:4C:5D:6E"
)

// testSecret is recognizable in base64url, so tests can look for leaks.
var testSecret = []byte("this-is-the-shared-secret-0123456789")

var testSecretB64 = base64.RawURLEncoding.EncodeToString(testSecret)

func fullLink() Link {
	return Link{
		Server:    "vpn.example.com:443",
		Transport: TransportQUIC,
		Pin:       testPin,
		SNI:       "vpn.example.com",
		Target:    "ssh",
		Secret:    testSecret,
		Name:      "Office Berlin",
	}
}

const fullLinkText = "qtunnel://vpn.example.com:443?transport=quic&pin=" + testPin +
	"&sni=vpn.example.com&target=ssh&name=Office%20Berlin#secret="

func TestString(t *testing.T) {
	want := fullLinkText + testSecretB64
	if got := fullLink().String(); got != want {
		t.Errorf("String:\n got %s\nwant %s", got, want)
	}
	// Without a secret there is no fragment at all.
	l := Link{Server: "h:1", Transport: TransportTCP}
	if got, want := l.String(), "qtunnel://h:1?transport=tcp"; got != want {
		t.Errorf("String = %s, want %s", got, want)
	}
	// A pin in openssl's spelling is written canonically.
	l.Pin = testPinOpenSSL
	if got, want := l.String(), "qtunnel://h:1?transport=tcp&pin="+testPin; got != want {
		t.Errorf("String = %s, want %s", got, want)
	}
	// Characters with a meaning in URLs are escaped in values.
	l = Link{Server: "h:1", Transport: TransportTCP, Name: "a&b=c#d+e%f?g;h é", Target: "x/y:z@w"}
	if got, want := l.String(), "qtunnel://h:1?transport=tcp&target=x/y:z@w&name=a%26b%3Dc%23d%2Be%25f%3Fg%3Bh%20%C3%A9"; got != want {
		t.Errorf("String = %s, want %s", got, want)
	}
}

func TestParseGood(t *testing.T) {
	maxSecret := bytes.Repeat([]byte{0xAB}, MaxSecretLen)
	tests := []struct {
		name string
		in   string
		want Link
	}{
		{"full", fullLinkText + testSecretB64, fullLink()},
		{"minimal", "qtunnel://example.com:443?transport=tcp",
			Link{Server: "example.com:443", Transport: TransportTCP}},
		{"IPv4", "qtunnel://192.0.2.10:443?transport=quic",
			Link{Server: "192.0.2.10:443", Transport: TransportQUIC}},
		{"IPv6", "qtunnel://[2001:db8::1]:8443?transport=quic",
			Link{Server: "[2001:db8::1]:8443", Transport: TransportQUIC}},
		{"pasted with white space, scheme in capitals", " \tQTUNNEL://h:1?transport=tcp\r\n",
			Link{Server: "h:1", Transport: TransportTCP}},
		{"trailing slash", "qtunnel://h:443/?transport=tcp",
			Link{Server: "h:443", Transport: TransportTCP}},
		{"port with leading zeros", "qtunnel://h:0443?transport=tcp",
			Link{Server: "h:443", Transport: TransportTCP}},
		{"keys in any order", "qtunnel://h:443?name=n&target=t&sni=s.example&pin=" + testPin + "&transport=quic",
			Link{Server: "h:443", Transport: TransportQUIC, Pin: testPin, SNI: "s.example", Target: "t", Name: "n"}},
		{"openssl pin, escaped", "qtunnel://h:443?transport=quic&pin=" + strings.ReplaceAll(testPinOpenSSL, ":", "%3A"),
			Link{Server: "h:443", Transport: TransportQUIC, Pin: testPin}},
		{"unicode name, + as space", "qtunnel://h:443?transport=tcp&name=B%C3%BCro+Berlin",
			Link{Server: "h:443", Transport: TransportTCP, Name: "Büro Berlin"}},
		{"target with a space", "qtunnel://h:443?transport=tcp&target=my%20db",
			Link{Server: "h:443", Transport: TransportTCP, Target: "my db"}},
		{"underscore host", "qtunnel://my_host.lan:443?transport=tcp",
			Link{Server: "my_host.lan:443", Transport: TransportTCP}},
		{"empty fragment", "qtunnel://h:443?transport=tcp#",
			Link{Server: "h:443", Transport: TransportTCP}},
		{"longest secret", "qtunnel://h:443?transport=tcp#secret=" + base64.RawURLEncoding.EncodeToString(maxSecret),
			Link{Server: "h:443", Transport: TransportTCP, Secret: maxSecret}},
		{"one-byte secret", "qtunnel://h:443?transport=tcp#secret=AA",
			Link{Server: "h:443", Transport: TransportTCP, Secret: []byte{0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse:\n got %#v\nwant %#v", fields(got), fields(tt.want))
			}
		})
	}
}

// fields shows a Link with its secret, which %v would leave out.
func fields(l Link) string {
	return fmt.Sprintf("{Server:%q Transport:%q Pin:%q SNI:%q Target:%q Name:%q Secret:%q}",
		l.Server, l.Transport, l.Pin, l.SNI, l.Target, l.Name, l.Secret)
}

func TestParseBad(t *testing.T) {
	const base = "qtunnel://h:443?transport=tcp"
	tests := []struct {
		name, in, want string // want: a phrase the error must contain
	}{
		{"empty", "", "does not start with qtunnel://"},
		{"other scheme", "https://example.com/x", `starts with "https://"`},
		{"no slashes", "qtunnel:h:443?transport=tcp", "does not start with qtunnel://"},
		{"too long", base + "&name=" + strings.Repeat("x", MaxLinkLen), "more than 8192"},
		{"control character", base + "\x00", "control character"},
		{"space in host", "qtunnel://ex ample.com:443?transport=tcp", "invalid character"},
		{"user", "qtunnel://me@h:443?transport=tcp", "user name"},
		{"path", "qtunnel://h:443/x?transport=tcp", "path"},
		{"no server", "qtunnel://?transport=tcp", "no server address"},
		{"no port", "qtunnel://h?transport=tcp", "want host:port"},
		{"empty port", "qtunnel://h:?transport=tcp", "has no port"},
		{"port 0", "qtunnel://h:0?transport=tcp", "from 1 to 65535"},
		{"port too big", "qtunnel://h:65536?transport=tcp", "from 1 to 65535"},
		{"no host", "qtunnel://:443?transport=tcp", "has no host"},
		{"IPv6 without brackets", "qtunnel://2001:db8::1:443?transport=tcp", "IPv6 in brackets"},
		{"IPv6 zone", "qtunnel://[fe80::1%25eth0]:443?transport=tcp", "without a zone"},
		{"IPv4 in brackets", "qtunnel://[192.0.2.1]:443?transport=tcp", "not a well-formed URL: invalid IP-literal"},
		{"bad host name", "qtunnel://-h.example:443?transport=tcp", "not a host name"},
		{"empty label", "qtunnel://h..example:443?transport=tcp", "not a host name"},
		{"international host", "qtunnel://b%C3%BCcher.example:443?transport=tcp", "xn--"},
		{"no transport", "qtunnel://h:443", "no transport"},
		{"no transport, only pin", "qtunnel://h:443?pin=" + testPin, "no transport"},
		{"unknown transport", "qtunnel://h:443?transport=udp", `transport "udp"`},
		{"transport in capitals", "qtunnel://h:443?transport=QUIC", `transport "QUIC"`},
		{"repeated key", base + "&transport=quic", `"transport" appears 2 times`},
		{"unknown key", base + "&port=1", `unknown parameter "port"`},
		{"misspelled key", base + "&snI=x", `unknown parameter "snI"`},
		{"key without value", base + "&sni", `"sni" is empty`},
		{"empty pin", base + "&pin=", `"pin" is empty`},
		{"sha1 pin", base + "&pin=sha1:abcd", "pin"},
		{"short pin", base + "&pin=sha256:abcd", "pin"},
		{"semicolon", base + ";name=x", "semicolon"},
		{"bad escape", base + "&name=%zz", "escape"},
		{"sni with space", base + "&sni=a%20b", "sni"},
		{"sni too long", base + "&sni=" + strings.Repeat("a.", 127) + "a", "sni"},
		{"target with control character", base + "&target=a%07", "target"},
		{"target too long", base + "&target=" + strings.Repeat("t", 256), "target"},
		{"target not UTF-8", base + "&target=%FF", "target"},
		{"name too long", base + "&name=" + strings.Repeat("n", MaxNameLen+1), "name"},
		{"name with newline", base + "&name=a%0Ab", "name"},
		{"name not UTF-8", base + "&name=%C3", "name"},
		{"name with a bidi override", base + "&name=evil%E2%80%AEtxt.exe", "name"},
		{"fragment without secret=", base + "#key=" + testSecretB64, "after # must be secret="},
		{"empty secret", base + "#secret=", "secret after #secret= is empty"},
		{"secret not base64url", base + "#secret=" + testSecretB64 + "$", "base64url"},
		{"secret in standard base64", base + "#secret=ab+/", "base64url"},
		{"secret with padding", base + "#secret=AA==", "base64url"},
		{"secret not canonical", base + "#secret=AB", "base64url"},
		{"secret too long", base + "#secret=" + base64.RawURLEncoding.EncodeToString(make([]byte, MaxSecretLen+1)), "longer than 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse accepted it: %s", fields(l))
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if len(err.Error()) > 400 {
				t.Errorf("error is %d bytes long; it should be a sentence", len(err.Error()))
			}
		})
	}
}

// TestErrorsHideSecret: whatever is wrong with a link, the error must not
// repeat its secret, since errors get logged.
func TestErrorsHideSecret(t *testing.T) {
	frag := "#secret=" + testSecretB64
	for _, in := range []string{
		"https://h:443?transport=tcp" + frag,
		"qtunnel://ex ample:443?transport=tcp" + frag,
		"qtunnel://h:443?transport=tcp&name=%zz" + frag,
		"qtunnel://me@h:443?transport=tcp" + frag,
		"qtunnel://h:443?transport=udp" + frag,
		"qtunnel://h:443?transport=tcp#key=" + testSecretB64,
		"qtunnel://h:443?transport=tcp" + frag + "%",
		"qtunnel://h:443?transport=tcp" + frag + "!",
	} {
		_, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) accepted it", in)
			continue
		}
		if strings.Contains(err.Error(), testSecretB64[:12]) {
			t.Errorf("error repeats the secret: %v", err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	links := []Link{
		fullLink(),
		{Server: "h:1", Transport: TransportTCP},
		{Server: "[2001:db8::1]:65535", Transport: TransportQUIC, Secret: []byte{0, 1, 2, 0xff}},
		{Server: "192.0.2.1:443", Transport: TransportQUIC, Name: "a&b=c#d+e%f?g;h é ✓", Target: "x/y:z@w ?#"},
		{Server: "h:443", Transport: TransportTCP, Pin: testPinOpenSSL},
		{Server: "h:0443", Transport: TransportTCP, Secret: []byte{}},
	}
	for _, l := range links {
		if err := l.Validate(); err != nil {
			t.Errorf("Validate(%s): %v", fields(l), err)
			continue
		}
		want, err := l.normalize()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(l.String())
		if err != nil {
			t.Errorf("Parse(%s): %v", l.String(), err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip:\n got %s\nwant %s", fields(got), fields(want))
		}
		// The canonical form is a fixed point.
		if got.String() != want.String() {
			t.Errorf("String not canonical: %s vs %s", got.String(), want.String())
		}
	}
}

// TestLongestLink: a Link with every field at its limit still fits in
// MaxLinkLen once written, so String never writes what Parse refuses.
func TestLongestLink(t *testing.T) {
	label := strings.Repeat("a", 63)
	host := strings.Join([]string{label, label, label, label[:61]}, ".")
	l := Link{
		Server:    host + ":65535",
		Transport: TransportQUIC,
		Pin:       testPin,
		SNI:       host,
		Target:    strings.Repeat("?", 255), // every byte escaped to 3
		Name:      strings.Repeat("é", MaxNameLen/2),
		Secret:    bytes.Repeat([]byte{0xff}, MaxSecretLen),
	}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	s := l.String()
	if len(s) > MaxLinkLen {
		t.Fatalf("longest link is %d bytes, more than MaxLinkLen", len(s))
	}
	if _, err := Parse(s); err != nil {
		t.Fatal(err)
	}
	t.Logf("longest link: %d bytes", len(s))
}

func TestValidate(t *testing.T) {
	bad := []Link{
		{},
		{Server: "h:443"},
		{Server: "h:443", Transport: "udp"},
		{Server: "h", Transport: TransportTCP},
		{Server: "h:443", Transport: TransportTCP, Pin: "x"},
		{Server: "h:443", Transport: TransportTCP, SNI: "a b"},
		{Server: "h:443", Transport: TransportTCP, Target: "a\nb"},
		{Server: "h:443", Transport: TransportTCP, Name: "a\x00"},
		{Server: "h:443", Transport: TransportTCP, Secret: make([]byte, MaxSecretLen+1)},
		{Server: "h h:443", Transport: TransportTCP},
	}
	for _, l := range bad {
		err := l.Validate()
		if err == nil {
			t.Errorf("Validate(%s) = nil", fields(l))
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%s): error does not wrap ErrInvalid: %v", fields(l), err)
		}
		// Whatever Validate refuses, Parse refuses too.
		if _, err := Parse(l.String()); err == nil {
			t.Errorf("Parse accepted %s, which Validate refuses", l.String())
		}
	}
}

// TestPrintingHidesSecret: fmt and slog print a Link without its secret;
// only an explicit String call writes it.
func TestPrintingHidesSecret(t *testing.T) {
	l := fullLink()
	if !strings.Contains(l.String(), testSecretB64) {
		t.Fatal("String lacks the secret")
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("import", "link", l)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("import", "link", l)
	outputs := []string{
		l.Redacted(),
		fmt.Sprint(l),
		fmt.Sprintf("%v %s %q %+v %#v %x", l, l, l, l, l, l),
		fmt.Sprintf("%v", &l),
		fmt.Sprintf("%v", []Link{l}),
		fmt.Errorf("bad: %v", l).Error(),
		logged.String(),
	}
	for _, out := range outputs {
		if strings.Contains(out, testSecretB64) || strings.Contains(out, string(testSecret)) {
			t.Errorf("secret printed: %s", out)
		}
		if !strings.Contains(out, "vpn.example.com:443") {
			t.Errorf("link not printed: %s", out)
		}
	}
	if r := l.Redacted(); r != strings.TrimSuffix(fullLinkText, "#secret=") {
		t.Errorf("Redacted = %s", r)
	}
	// A redacted link reads back as a link without a secret, never as
	// one with a wrong secret.
	got, err := Parse(l.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	if got.Secret != nil {
		t.Errorf("redacted link has a secret: %q", got.Secret)
	}
}
