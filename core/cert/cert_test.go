package cert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func parseCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	der, err := PEMToDER(certPEM)
	if err != nil {
		t.Fatalf("PEMToDER: %v", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("ParseCertificate: %v", err)
	}
	return c
}

func TestGenerate(t *testing.T) {
	tests := []struct {
		name     string
		hosts    []string
		wantDNS  []string
		wantIPs  []string
		verifyAs string // a name the certificate must be valid for, if any
	}{
		{name: "none", hosts: nil},
		{name: "dns", hosts: []string{"localhost", "tunnel.example.com"}, wantDNS: []string{"localhost", "tunnel.example.com"}, verifyAs: "tunnel.example.com"},
		{name: "ipv4", hosts: []string{"127.0.0.1"}, wantIPs: []string{"127.0.0.1"}, verifyAs: "127.0.0.1"},
		{name: "ipv6", hosts: []string{"::1", "2001:db8::5"}, wantIPs: []string{"::1", "2001:db8::5"}, verifyAs: "2001:db8::5"},
		{name: "mixed", hosts: []string{"a.example", "10.1.2.3", "b.example", "::1"}, wantDNS: []string{"a.example", "b.example"}, wantIPs: []string{"10.1.2.3", "::1"}, verifyAs: "b.example"},
		{name: "blank and spaced", hosts: []string{"", "  ", " host.example ", "\t192.0.2.1\n"}, wantDNS: []string{"host.example"}, wantIPs: []string{"192.0.2.1"}, verifyAs: "host.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			certPEM, keyPEM, err := Generate(tt.hosts)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
				t.Fatalf("tls.X509KeyPair refuses the pair: %v", err)
			}
			kb, _ := pem.Decode(keyPEM)
			if kb == nil || kb.Type != "PRIVATE KEY" {
				t.Fatalf("key PEM block = %v, want PRIVATE KEY", kb)
			}
			key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
			if err != nil {
				t.Fatalf("ParsePKCS8PrivateKey: %v", err)
			}
			ek, ok := key.(*ecdsa.PrivateKey)
			if !ok || ek.Curve != elliptic.P256() {
				t.Fatalf("key is %T, want ECDSA P-256", key)
			}

			c := parseCert(t, certPEM)
			pub, ok := c.PublicKey.(*ecdsa.PublicKey)
			if !ok || pub.Curve != elliptic.P256() || !pub.Equal(&ek.PublicKey) {
				t.Fatalf("certificate public key %T does not match the P-256 key", c.PublicKey)
			}
			if c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
				t.Fatalf("signature algorithm %v", c.SignatureAlgorithm)
			}
			now := time.Now()
			if c.NotBefore.After(before) || c.NotAfter.Before(now) {
				t.Fatalf("not valid now: %v .. %v", c.NotBefore, c.NotAfter)
			}
			if d := c.NotAfter.Sub(now); d < Validity-time.Hour || d > Validity+time.Hour {
				t.Fatalf("valid for %v more, want about %v", d, Validity)
			}
			if !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
				t.Fatalf("ExtKeyUsage %v lacks ServerAuth", c.ExtKeyUsage)
			}
			if c.IsCA {
				t.Fatal("certificate is a CA")
			}
			if !slices.Equal(c.DNSNames, tt.wantDNS) {
				t.Fatalf("DNSNames = %q, want %q", c.DNSNames, tt.wantDNS)
			}
			var ips []string
			for _, ip := range c.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tt.wantIPs) {
				t.Fatalf("IPAddresses = %q, want %q", ips, tt.wantIPs)
			}
			if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
				t.Fatalf("not self-signed: %v", err)
			}
			if tt.verifyAs != "" {
				if err := c.VerifyHostname(tt.verifyAs); err != nil {
					t.Fatalf("VerifyHostname(%q): %v", tt.verifyAs, err)
				}
				if err := c.VerifyHostname("not-listed.example"); err == nil {
					t.Fatal("certificate valid for a name it does not list")
				}
			}
		})
	}
}

func TestGenerateDiffers(t *testing.T) {
	c1, k1, err := Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	c2, k2, err := Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(k1, k2) || bytes.Equal(c1, c2) {
		t.Fatal("two Generate calls gave the same key or certificate")
	}
	if a, b := parseCert(t, c1).SerialNumber, parseCert(t, c2).SerialNumber; a.Cmp(b) == 0 {
		t.Fatalf("same serial %v twice", a)
	}
	if s := parseCert(t, c1).SerialNumber; s.Sign() <= 0 {
		t.Fatalf("serial %v is not positive", s)
	}
}

// testPair is one generated pair shared by tests that only read it.
var testPair = sync.OnceValues(func() ([2][]byte, error) {
	c, k, err := Generate([]string{"localhost"})
	return [2][]byte{c, k}, err
})

func pair(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	p, err := testPair()
	if err != nil {
		t.Fatal(err)
	}
	return p[0], p[1]
}

func perm(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestWritePair(t *testing.T) {
	certPEM, keyPEM := pair(t)
	dir := t.TempDir()
	cp, kp := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := WritePair(cp, kp, certPEM, keyPEM); err != nil {
		t.Fatalf("WritePair: %v", err)
	}
	if got, _ := os.ReadFile(cp); !bytes.Equal(got, certPEM) {
		t.Fatal("certificate file content differs")
	}
	if got, _ := os.ReadFile(kp); !bytes.Equal(got, keyPEM) {
		t.Fatal("key file content differs")
	}
	if runtime.GOOS != "windows" {
		if p := perm(t, kp); p != 0o600 {
			t.Fatalf("key mode %04o, want 0600", p)
		}
		if p := perm(t, cp); p&^0o644 != 0 || p&0o600 != 0o600 {
			t.Fatalf("certificate mode %04o, want 0644 (less the umask)", p)
		}
	}
	if _, err := Load(cp, kp); err != nil {
		t.Fatalf("Load of the written pair: %v", err)
	}
}

func TestWritePairNeverOverwrites(t *testing.T) {
	certPEM, keyPEM := pair(t)
	tests := []struct {
		name            string
		certOld         []byte // nil: the file does not exist beforehand
		keyOld          []byte
		keyIsBadSymlink bool
	}{
		{name: "cert exists", certOld: []byte("old cert")},
		{name: "key exists", keyOld: []byte("old key")},
		{name: "both exist", certOld: []byte("old cert"), keyOld: []byte("old key")},
		{name: "empty cert exists", certOld: []byte{}},
		{name: "dangling symlink at key", keyIsBadSymlink: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cp, kp := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
			if tt.certOld != nil {
				if err := os.WriteFile(cp, tt.certOld, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tt.keyOld != nil {
				if err := os.WriteFile(kp, tt.keyOld, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			linkTarget := filepath.Join(dir, "elsewhere")
			if tt.keyIsBadSymlink {
				if err := os.Symlink(linkTarget, kp); err != nil {
					t.Skipf("symlink: %v", err)
				}
			}
			err := WritePair(cp, kp, certPEM, keyPEM)
			if err == nil {
				t.Fatal("WritePair overwrote an existing file")
			}
			if !strings.Contains(err.Error(), "already exists") {
				t.Fatalf("err = %v, want 'already exists'", err)
			}
			check := func(path string, old []byte) {
				got, rerr := os.ReadFile(path)
				if old == nil {
					if tt.keyIsBadSymlink && path == kp {
						return
					}
					if !errors.Is(rerr, fs.ErrNotExist) {
						t.Fatalf("%s was created (%v)", filepath.Base(path), rerr)
					}
					return
				}
				if rerr != nil || !bytes.Equal(got, old) {
					t.Fatalf("%s changed to %q (%v), want %q", filepath.Base(path), got, rerr, old)
				}
			}
			check(cp, tt.certOld)
			check(kp, tt.keyOld)
			if _, err := os.Lstat(linkTarget); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("wrote through the symlink: %v", err)
			}
		})
	}
}

func TestWritePairCleansUpKeyOnCertFailure(t *testing.T) {
	certPEM, keyPEM := pair(t)
	dir := t.TempDir()
	kp := filepath.Join(dir, "k.pem")
	cp := filepath.Join(dir, "missing-dir", "c.pem")
	if err := WritePair(cp, kp, certPEM, keyPEM); err == nil {
		t.Fatal("WritePair into a missing directory succeeded")
	}
	if _, err := os.Lstat(kp); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("key left behind after the certificate failed: %v", err)
	}
}

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "qtunnel")
	hosts := []string{"tunnel.example", "192.0.2.7"}

	c1, created, err := LoadOrCreate(dir, hosts)
	if err != nil {
		t.Fatalf("first LoadOrCreate: %v", err)
	}
	if !created {
		t.Fatal("first LoadOrCreate: created = false")
	}
	if runtime.GOOS != "windows" {
		if p := perm(t, dir); p != 0o700 {
			t.Fatalf("state directory mode %04o, want 0700", p)
		}
		if p := perm(t, filepath.Join(dir, StateKeyFile)); p != 0o600 {
			t.Fatalf("key mode %04o, want 0600", p)
		}
	}
	fp1, err := LeafFingerprint(c1)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c1.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(leaf.DNSNames, []string{"tunnel.example"}) || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("192.0.2.7")) {
		t.Fatalf("SANs = %q %v", leaf.DNSNames, leaf.IPAddresses)
	}

	for i := range 2 {
		c2, created, err := LoadOrCreate(dir, []string{"other.example"})
		if err != nil {
			t.Fatalf("LoadOrCreate #%d: %v", i+2, err)
		}
		if created {
			t.Fatalf("LoadOrCreate #%d: created = true, want the stored certificate", i+2)
		}
		fp2, err := LeafFingerprint(c2)
		if err != nil {
			t.Fatal(err)
		}
		if !fp1.Equal(fp2) {
			t.Fatalf("LoadOrCreate #%d loaded %s, want %s", i+2, fp2, fp1)
		}
	}
	// The stored file is what was returned the first time.
	stored, err := os.ReadFile(filepath.Join(dir, StateCertFile))
	if err != nil {
		t.Fatal(err)
	}
	der, err := PEMToDER(stored)
	if err != nil {
		t.Fatal(err)
	}
	if got := FingerprintOf(der); !got.Equal(fp1) {
		t.Fatalf("stored certificate %s, returned %s", got, fp1)
	}
}

func TestLoadOrCreateOnlyOneFile(t *testing.T) {
	for _, remove := range []string{StateCertFile, StateKeyFile} {
		t.Run("without "+remove, func(t *testing.T) {
			dir := t.TempDir()
			if _, _, err := LoadOrCreate(dir, nil); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dir, remove)); err != nil {
				t.Fatal(err)
			}
			kept := StateCertFile
			if remove == StateCertFile {
				kept = StateKeyFile
			}
			before, err := os.ReadFile(filepath.Join(dir, kept))
			if err != nil {
				t.Fatal(err)
			}
			_, created, err := LoadOrCreate(dir, nil)
			if err == nil || created {
				t.Fatalf("LoadOrCreate with only %s = created %v, err %v; want an error", kept, created, err)
			}
			if !strings.Contains(err.Error(), "only one") {
				t.Fatalf("err = %q, want it to say the directory holds only one of the files", err)
			}
			if _, err := os.Stat(filepath.Join(dir, remove)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%s was recreated", remove)
			}
			after, err := os.ReadFile(filepath.Join(dir, kept))
			if err != nil || !bytes.Equal(before, after) {
				t.Fatalf("%s changed", kept)
			}
		})
	}
}

func TestLoadOrCreateCorrupt(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := LoadOrCreate(dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, StateCertFile), []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, created, err := LoadOrCreate(dir, nil); err == nil || created {
		t.Fatalf("LoadOrCreate with a corrupt certificate = created %v, err %v; want an error", created, err)
	}
}

func TestLoadMismatchedPair(t *testing.T) {
	certPEM, _ := pair(t)
	_, otherKey, err := Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cp, kp := filepath.Join(dir, "c"), filepath.Join(dir, "k")
	if err := WritePair(cp, kp, certPEM, otherKey); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(cp, kp); err == nil || !strings.Contains(err.Error(), cp) {
		t.Fatalf("Load of a mismatched pair err = %v, want an error naming %s", err, cp)
	}
}

var pinFormat = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

func TestFingerprint(t *testing.T) {
	// sha256("abc"), a published test vector.
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := FingerprintOf([]byte("abc")).String(); got != "sha256:"+abc {
		t.Fatalf("FingerprintOf(abc) = %s", got)
	}
	certPEM, keyPEM := pair(t)
	der, err := PEMToDER(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	fp := FingerprintOf(der)
	s := fp.String()
	if !pinFormat.MatchString(s) {
		t.Fatalf("String() = %q, want sha256: and 64 lowercase hex digits", s)
	}
	if sum := sha256.Sum256(der); s != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Fatalf("String() = %q is not the SHA-256 of the DER", s)
	}
	if fp.Equal(FingerprintOf([]byte("abc"))) || !fp.Equal(fp) {
		t.Fatal("Equal is wrong")
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	lf, err := LeafFingerprint(c)
	if err != nil || !lf.Equal(fp) {
		t.Fatalf("LeafFingerprint = %s, %v; want %s", lf, err, fp)
	}
	if _, err := LeafFingerprint(tls.Certificate{}); err == nil {
		t.Fatal("LeafFingerprint of an empty chain succeeded")
	}
}

func TestParsePin(t *testing.T) {
	const hexLower = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	var want Fingerprint
	for i := range want {
		want[i] = byte(i)
	}
	colons := func(h string) string {
		var parts []string
		for i := 0; i < len(h); i += 2 {
			parts = append(parts, h[i:i+2])
		}
		return strings.Join(parts, ":")
	}
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"canonical", "sha256:" + hexLower, true},
		{"uppercase hex", "sha256:" + strings.ToUpper(hexLower), true},
		{"openssl colons", "sha256:" + colons(strings.ToUpper(hexLower)), true},
		{"lowercase colons", "sha256:" + colons(hexLower), true},
		{"surrounding space", "  sha256:" + hexLower + "\n", true},
		{"missing prefix", hexLower, false},
		{"other hash prefix", "sha1:" + hexLower, false},
		{"prefix only", "sha256:", false},
		{"empty", "", false},
		{"short by one digit", "sha256:" + hexLower[:63], false},
		{"short by one byte", "sha256:" + hexLower[:62], false},
		{"long by one byte", "sha256:" + hexLower + "00", false},
		{"non-hex", "sha256:" + hexLower[:62] + "zz", false},
		{"inner space", "sha256:" + hexLower[:32] + " " + hexLower[32:], false},
		{"sha256 of SHA-1 length", "sha256:" + hexLower[:40], false},
		{"uppercase prefix", "SHA256:" + hexLower, true},
		{"openssl output line", "sha256 Fingerprint=" + colons(strings.ToUpper(hexLower)), true},
		{"stray colon", "sha256:0:00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", false},
		{"colons not between pairs", "sha256:" + colons(hexLower)[1:] + "0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePin(tt.in)
			if !tt.ok {
				if err == nil {
					t.Fatalf("ParsePin(%q) = %s, want an error", tt.in, got)
				}
				if got != (Fingerprint{}) {
					t.Fatalf("on error got %s, want zero", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePin(%q): %v", tt.in, err)
			}
			if got != want {
				t.Fatalf("ParsePin(%q) = %s, want %s", tt.in, got, want)
			}
			if got.String() != "sha256:"+hexLower {
				t.Fatalf("String() = %s", got)
			}
		})
	}
}

func TestParsePinOfRealCert(t *testing.T) {
	certPEM, _ := pair(t)
	der, err := PEMToDER(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	fp := FingerprintOf(der)
	got, err := ParsePin(fp.String())
	if err != nil || !got.Equal(fp) {
		t.Fatalf("ParsePin(String()) = %s, %v; want %s", got, err, fp)
	}
}

func TestVerifyPin(t *testing.T) {
	certPEM, _ := pair(t)
	otherPEM, _, err := Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, other := parseCert(t, certPEM), parseCert(t, otherPEM)
	verify := VerifyPin(FingerprintOf(leaf.Raw))
	tests := []struct {
		name  string
		chain []*x509.Certificate
		ok    bool
	}{
		{"right leaf", []*x509.Certificate{leaf}, true},
		{"right leaf with more", []*x509.Certificate{leaf, other}, true},
		{"other leaf", []*x509.Certificate{other}, false},
		{"pinned cert not the leaf", []*x509.Certificate{other, leaf}, false},
		{"no certificates", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verify(tls.ConnectionState{PeerCertificates: tt.chain})
			if tt.ok {
				if err != nil {
					t.Fatalf("VerifyPin: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrPinMismatch) {
				t.Fatalf("err = %v, want ErrPinMismatch", err)
			}
		})
	}
	// The error names the certificate that was seen, so that a user can pin it.
	err = verify(tls.ConnectionState{PeerCertificates: []*x509.Certificate{other}})
	if !strings.Contains(err.Error(), FingerprintOf(other.Raw).String()) {
		t.Fatalf("err = %q, want it to name %s", err, FingerprintOf(other.Raw))
	}
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-ch
	if a.err != nil {
		c.Close()
		t.Fatal(a.err)
	}
	t.Cleanup(func() {
		c.Close()
		a.c.Close()
	})
	return c, a.c
}

// TestVerifyPinHandshake uses VerifyPin in a real TLS handshake.
func TestVerifyPinHandshake(t *testing.T) {
	certPEM, keyPEM := pair(t)
	serverCert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	right, _ := LeafFingerprint(serverCert)
	wrong := FingerprintOf([]byte("something else"))
	tests := []struct {
		name string
		pin  Fingerprint
		ok   bool
	}{
		{"right pin", right, true},
		{"wrong pin", wrong, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Loopback TCP rather than net.Pipe: a client that fails
			// mid-handshake stops reading, and a pipe would then block the
			// server's writes until the deadline.
			cp, sp := tcpPair(t)
			deadline := time.Now().Add(10 * time.Second)
			_ = cp.SetDeadline(deadline)
			_ = sp.SetDeadline(deadline)
			srv := tls.Server(sp, &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS13})
			cli := tls.Client(cp, &tls.Config{
				InsecureSkipVerify: true,
				VerifyConnection:   VerifyPin(tt.pin),
				MinVersion:         tls.VersionTLS13,
			})
			go func() {
				_ = srv.Handshake()
				sp.Close() // a failed client leaves the server waiting otherwise
			}()
			err := cli.Handshake()
			if tt.ok && err != nil {
				t.Fatalf("handshake with the right pin: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrPinMismatch) {
				t.Fatalf("handshake with the wrong pin: err = %v, want ErrPinMismatch", err)
			}
		})
	}
}

func TestPEMToDER(t *testing.T) {
	certPEM, keyPEM := pair(t)
	want := parseCert(t, certPEM).Raw
	other := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}})
	otherCert, _, err := Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name string
		in   []byte
		want []byte // nil: an error is expected
	}{
		{"cert only", certPEM, want},
		{"key first", cat(keyPEM, certPEM), want},
		{"params and key first", cat(other, keyPEM, certPEM), want},
		{"text around", cat([]byte("subject=CN=qtunnel\n"), certPEM, []byte("trailing\n")), want},
		{"first of two certs", cat(certPEM, otherCert), want},
		{"key only", keyPEM, nil},
		{"empty", nil, nil},
		{"garbage", []byte("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"), nil},
		{"lowercase type", bytes.Replace(certPEM, []byte("CERTIFICATE"), []byte("certificate"), 2), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PEMToDER(tt.in)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("PEMToDER succeeded with %d bytes, want an error", len(got))
				}
				return
			}
			if err != nil {
				t.Fatalf("PEMToDER: %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatal("PEMToDER returned other bytes than the certificate's DER")
			}
		})
	}
}
