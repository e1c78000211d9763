package sharelink

import (
	"reflect"
	"testing"
)

// FuzzParse: Parse never panics, and whatever it accepts reads back the
// same from its own String, which is then a fixed point.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		fullLinkText + testSecretB64,
		"qtunnel://h:443?transport=tcp",
		"qtunnel://[2001:db8::1]:8443?transport=quic#secret=AA",
		"QTUNNEL://h:0443/?name=B%C3%BCro+Berlin&transport=tcp",
		"qtunnel://h:443?transport=quic&pin=SHA256:3F:5A:0C:1D:2E:4B:6A:8C:9D:0E:1F:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08:19:2A:3B:4C:5D:6E",
		"qtunnel://h:443?transport=tcp&target=%3F%23&name=%26",
		"qtunnel://[fe80::1%25eth0]:443?transport=tcp",
		"qtunnel://h:443?transport=tcp;x",
		"qtunnel://me@h:443?transport=tcp#secret=AB",
		"https://h:443",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			return
		}
		if err := l.Validate(); err != nil {
			t.Fatalf("Parse(%q) returned a Link that Validate refuses: %v", s, err)
		}
		out := l.String()
		if len(out) > MaxLinkLen {
			t.Fatalf("String is %d bytes, more than MaxLinkLen", len(out))
		}
		l2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q) accepted, but not its String %q: %v", s, out, err)
		}
		if !reflect.DeepEqual(l, l2) {
			t.Fatalf("round trip of %q:\n got %s\nwant %s", s, fields(l2), fields(l))
		}
		if out2 := l2.String(); out2 != out {
			t.Fatalf("String not canonical: %q then %q", out, out2)
		}
	})
}

// FuzzLink: any Link that Validate accepts, Parse reads back from String.
func FuzzLink(f *testing.F) {
	l := fullLink()
	f.Add(l.Server, l.Transport, l.Pin, l.SNI, l.Target, l.Name, l.Secret)
	f.Add("[::1]:1", "tcp", "", "", "a b?#&", "é\u2028", []byte{})
	f.Add("h:0443", "quic", testPinOpenSSL, "x_y", "", "", []byte{0})
	f.Fuzz(func(t *testing.T, server, transport, pin, sni, target, name string, secret []byte) {
		l := Link{Server: server, Transport: transport, Pin: pin, SNI: sni, Target: target, Name: name, Secret: secret}
		want, err := l.normalize()
		if err != nil {
			// Not the converse: a Server of "h:1/" is refused, yet its
			// link reads as h:1 with an empty path.
			return
		}
		got, err := Parse(l.String())
		if err != nil {
			t.Fatalf("Validate accepts %s, Parse refuses %q: %v", fields(l), l.String(), err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip:\n got %s\nwant %s", fields(got), fields(want))
		}
	})
}
