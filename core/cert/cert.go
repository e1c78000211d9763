// Package cert makes, stores and checks the server's TLS certificate: an
// ECDSA P-256 self-signed certificate generated once and kept in a state
// directory, a given certificate/key pair, SHA-256 fingerprints, and pins.
package cert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Validity is how long a generated certificate is valid. Trust in a
// self-signed certificate comes from the secret proof or a pin, not from
// dates, so it is long: renewing would break every pinned client.
const Validity = 10 * 365 * 24 * time.Hour

// File names inside a state directory.
const (
	StateCertFile = "server.crt"
	StateKeyFile  = "server.key"
)

// Generate makes an ECDSA P-256 key and a self-signed certificate for the
// given host names and IP addresses (none is fine: clients that verify by
// secret or pin do not check names). It returns both PEM-encoded.
func Generate(hosts []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial: %w", err)
	}
	now := time.Now()
	tmpl := x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "qtunnel"},
		NotBefore:             now.Add(-time.Hour), // tolerate clocks a little behind
		NotAfter:              now.Add(Validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// WritePair writes a certificate (mode 0644) and key (mode 0600). It never
// overwrites: an existing file is an error, so that no key is lost by a
// repeated command.
func WritePair(certPath, keyPath string, certPEM, keyPEM []byte) error {
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists; remove it or choose another path", p)
		}
	}
	if err := writeNew(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeNew(certPath, certPEM, 0o644); err != nil {
		_ = os.Remove(keyPath)
		return err
	}
	return nil
}

// writeNew creates path exclusively with mode perm and writes data, so the
// key is never readable by others, not even for a moment.
func writeNew(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm) // #nosec G304 -- the path the operator chose for the certificate or key; O_EXCL never overwrites
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}

// Load reads a certificate/key pair from PEM files.
func Load(certPath, keyPath string) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load certificate %s and key %s: %w", certPath, keyPath, err)
	}
	return c, nil
}

// LoadOrCreate loads the certificate kept in dir, or generates and stores
// one (directory 0700, key 0600) if dir holds none. created says which.
func LoadOrCreate(dir string, hosts []string) (c tls.Certificate, created bool, err error) {
	certPath := filepath.Join(dir, StateCertFile)
	keyPath := filepath.Join(dir, StateKeyFile)
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		c, err := Load(certPath, keyPath)
		return c, false, err
	case certErr == nil || keyErr == nil:
		return tls.Certificate{}, false, fmt.Errorf("state directory %s holds only one of %s and %s; remove it to make a new pair", dir, StateCertFile, StateKeyFile)
	case !errors.Is(certErr, fs.ErrNotExist):
		return tls.Certificate{}, false, fmt.Errorf("check %s: %w", certPath, certErr)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("create state directory: %w", err)
	}
	certPEM, keyPEM, err := Generate(hosts)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	if err := WritePair(certPath, keyPath, certPEM, keyPEM); err != nil {
		return tls.Certificate{}, false, err
	}
	c, err = tls.X509KeyPair(certPEM, keyPEM)
	return c, true, err
}

// Fingerprint is the SHA-256 of a certificate's DER bytes, the value that
// `openssl x509 -noout -fingerprint -sha256` prints.
type Fingerprint [sha256.Size]byte

// FingerprintOf returns the fingerprint of a DER-encoded certificate.
func FingerprintOf(der []byte) Fingerprint { return sha256.Sum256(der) }

// String formats the fingerprint as a pin: "sha256:" and 64 hex digits.
func (f Fingerprint) String() string { return "sha256:" + hex.EncodeToString(f[:]) }

// Equal compares in constant time.
func (f Fingerprint) Equal(g Fingerprint) bool { return subtle.ConstantTimeCompare(f[:], g[:]) == 1 }

// ParsePin parses a certificate pin: "sha256:" and 64 hex digits, in
// either case, optionally in openssl's colon-separated pairs; openssl's
// whole output line ("sha256 Fingerprint=AB:CD:...") is accepted too.
func ParsePin(s string) (Fingerprint, error) {
	var f Fingerprint
	bad := fmt.Errorf("pin %q: want sha256:<64 hex digits>", s)
	t := strings.TrimSpace(s)
	lower := strings.ToLower(t)
	var rest string
	switch {
	case strings.HasPrefix(lower, "sha256:"):
		rest = t[len("sha256:"):]
	case strings.HasPrefix(lower, "sha256 fingerprint="):
		rest = t[len("sha256 fingerprint="):]
	default:
		return f, bad
	}
	if strings.Contains(rest, ":") {
		// Colons, if any, must separate every pair: "ab:cd:..".
		pairs := strings.Split(rest, ":")
		if len(pairs) != sha256.Size {
			return f, bad
		}
		for _, p := range pairs {
			if len(p) != 2 {
				return f, bad
			}
		}
		rest = strings.Join(pairs, "")
	}
	b, err := hex.DecodeString(rest)
	if err != nil || len(b) != sha256.Size {
		return f, bad
	}
	copy(f[:], b)
	return f, nil
}

// ErrPinMismatch is returned when the server's certificate is not the pinned one.
var ErrPinMismatch = errors.New("the server's certificate does not match the pin")

// VerifyPin returns a tls.Config.VerifyConnection function that accepts only
// a leaf certificate with fingerprint pin. VerifyConnection also runs on
// resumed sessions, unlike VerifyPeerCertificate.
func VerifyPin(pin Fingerprint) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return ErrPinMismatch
		}
		got := FingerprintOf(cs.PeerCertificates[0].Raw)
		if !got.Equal(pin) {
			return fmt.Errorf("%w: got %s", ErrPinMismatch, got)
		}
		return nil
	}
}

// LeafFingerprint returns the fingerprint of c's leaf certificate.
func LeafFingerprint(c tls.Certificate) (Fingerprint, error) {
	if len(c.Certificate) == 0 {
		return Fingerprint{}, errors.New("certificate chain is empty")
	}
	return FingerprintOf(c.Certificate[0]), nil
}

// PEMToDER returns the first certificate's DER bytes from PEM data.
func PEMToDER(certPEM []byte) ([]byte, error) {
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no CERTIFICATE block in PEM data")
		}
		if b.Type == "CERTIFICATE" {
			return bytes.Clone(b.Bytes), nil
		}
	}
}
