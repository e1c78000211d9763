package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/internal/testutil"
)

// TestDesignDocumentCommands runs the design document's command lines as
// written (single-dash flags, =true booleans, the secret on the command
// line), with loopback ports in place of 443/8080, and the certificate
// made by -generate-cert.
func TestDesignDocumentCommands(t *testing.T) {
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	code, stdout, stderr := runQT(t, nil, "-generate-cert", "-cert-file="+crt, "-key-file="+key)
	if code != 0 {
		t.Fatalf("-generate-cert: exit %d: %s", code, stderr)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v, mode %v; want 0600", err, fi.Mode())
	}
	pin := ""
	for _, f := range strings.Fields(stdout) {
		if strings.HasPrefix(f, "-pin=sha256:") {
			pin = f
		}
	}
	if pin == "" {
		t.Fatalf("-generate-cert printed no pin: %q", stdout)
	}
	for _, q := range modes {
		t.Run(modeName(q), func(t *testing.T) {
			backend := testutil.StartEchoBackend(t)
			srv := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			cli := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			serverArgs := []string{"-listen=" + srv, "-backend=" + backend.Addr(), "-secret=company-secret",
				"-cert-file=" + crt, "-key-file=" + key}
			clientArgs := []string{"-listen=" + cli, "-backend=" + srv, "-clientmode=true", "-secret=company-secret"}
			if q {
				serverArgs = append(serverArgs, "-quic=true")
				clientArgs = append(clientArgs, "-quic=true", pin)
			}
			server := start(t, "server", nil, serverArgs...)
			server.waitLog(`msg="server started"`, 20*time.Second)
			client := start(t, "client", nil, clientArgs...)
			client.waitLog(`msg="connected to server"`, 20*time.Second)
			if err := echoOnce(cli); err != nil {
				t.Fatal(err)
			}
			for _, p := range []*proc{server, client} {
				if !p.hasLog(`can be read by other users`) {
					t.Errorf("%s gave no warning about -secret on the command line", p.name)
				}
				if p.hasLog(`company-secret`) {
					t.Errorf("%s logged the secret", p.name)
				}
			}
			if q && !client.hasLog(`server_verified_by="pinned certificate`) {
				t.Error("client does not say it pinned the certificate")
			}
		})
	}
}

// TestPinMismatch: a client pinning another certificate refuses the server.
func TestPinMismatch(t *testing.T) {
	backend := testutil.StartEchoBackend(t)
	s := startTunnel(t, true, backend.Addr())
	cli := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	client := start(t, "client", nil, "-listen="+cli, "-backend="+s.serverAddr, "-clientmode=true",
		"-secret-file="+s.secretPath, "-quic=true", "-pin=sha256:"+strings.Repeat("ab", 32))
	client.waitLog(`does not match the pin`, 20*time.Second)
	if err := echoOnce(cli); err == nil {
		t.Fatal("a connection worked through a server whose certificate does not match the pin")
	}
}

// TestExitCodes checks the one-line errors and exit codes a user meets.
func TestExitCodes(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad flag", []string{"-nosuchflag"}, 2, "flag provided but not defined"},
		{"address without port", []string{"-listen=:8080", "-backend=server", "-secret=x"}, 2, "missing port"},
		{"listen address busy", []string{"-listen=" + busy.Addr().String(), "-backend=127.0.0.1:1", "-secret=x", "-state-dir=" + t.TempDir()}, 1, "address already in use"},
		{"address that is not ours", []string{"-listen=192.0.2.1:8080", "-backend=127.0.0.1:1", "-secret=x", "-clientmode=true"}, 1, "cannot assign requested address"},
		{"unknown server host", []string{"-listen=127.0.0.1:0", "-backend=host.invalid:443", "-secret=x", "-clientmode=true"}, 1, "no such host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runQT(t, nil, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d", code, tt.code)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "qtunnel: ") || !strings.Contains(last, tt.want) {
				t.Errorf("stderr ends %q, want a line \"qtunnel: ...%s...\"", last, tt.want)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
				t.Errorf("stack trace on stderr:\n%s", stderr)
			}
		})
	}
}

// TestIPv6AndHostNames runs the tunnel over IPv6 loopback, with the client
// reaching the server by name.
func TestIPv6AndHostNames(t *testing.T) {
	probe, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback here:", err)
	}
	probe.Close()
	backend := testutil.StartEchoBackend(t)
	secretPath := secretFile(t, strongSecret)
	for _, q := range modes {
		t.Run(modeName(q), func(t *testing.T) {
			port := freePort(t)
			server := start(t, "server", nil, fmt.Sprintf("-listen=[::]:%d", port), "-backend=localhost:"+portOf(backend.Addr()),
				"-secret-file="+secretPath, modeFlag(q), "-state-dir="+t.TempDir())
			server.waitLog(`msg="server started"`, 20*time.Second)
			for _, target := range []string{fmt.Sprintf("[::1]:%d", port), fmt.Sprintf("localhost:%d", port)} {
				cli := fmt.Sprintf("[::1]:%d", freePort(t))
				client := start(t, "client", nil, "-listen="+cli, "-backend="+target, "-clientmode=true",
					"-secret-file="+secretPath, modeFlag(q))
				client.waitLog(`msg="connected to server"`, 20*time.Second)
				if err := echoOnce(cli); err != nil {
					t.Fatalf("client -> %s: %v", target, err)
				}
				client.stop(10 * time.Second)
			}
		})
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// writeCAAndLeaf makes a CA and a server certificate for name signed by it,
// written as PEM files into dir.
func writeCAAndLeaf(t *testing.T, dir, name string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(leafKey)
	write := func(file, typ string, der []byte, mode os.FileMode) string {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER, 0o644), write("server.crt", "CERTIFICATE", leafDER, 0o644),
		write("server.key", "PRIVATE KEY", keyDER, 0o600)
}

// TestCAVerifiedMode: a server with a CA-issued certificate, a client that
// verifies it with -ca and -sni; the wrong name is refused.
func TestCAVerifiedMode(t *testing.T) {
	dir := t.TempDir()
	ca, crt, key := writeCAAndLeaf(t, dir, "tunnel.test")
	backend := testutil.StartEchoBackend(t)
	secretPath := secretFile(t, strongSecret)
	srv := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	server := start(t, "server", nil, "-listen="+srv, "-backend="+backend.Addr(), "-secret-file="+secretPath,
		"-quic=true", "-cert-file="+crt, "-key-file="+key)
	server.waitLog(`msg="server started"`, 20*time.Second)

	good := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	client := start(t, "client", nil, "-listen="+good, "-backend="+srv, "-clientmode=true", "-secret-file="+secretPath,
		"-quic=true", "-ca="+ca, "-sni=tunnel.test")
	client.waitLog(`msg="connected to server"`, 20*time.Second)
	if !client.hasLog(`server_verified_by="CA-verified certificate and shared secret"`) {
		t.Error("client does not say it verifies the certificate by CA")
	}
	if err := echoOnce(good); err != nil {
		t.Fatal(err)
	}

	bad := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	wrong := start(t, "client", nil, "-listen="+bad, "-backend="+srv, "-clientmode=true", "-secret-file="+secretPath,
		"-quic=true", "-ca="+ca, "-sni=other.test")
	wrong.waitLog(`certificate is valid for tunnel.test, not other.test`, 20*time.Second)
	if got := tryExchange(bad, "hello"); len(got) != 0 {
		t.Fatalf("got %q through a server with the wrong name", got)
	}
	// System roots do not know the test CA.
	sys := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	untrusted := start(t, "client", nil, "-listen="+sys, "-backend="+srv, "-clientmode=true", "-secret-file="+secretPath,
		"-quic=true", "-ca=system", "-sni=tunnel.test")
	untrusted.waitLog(`certificate signed by unknown authority`, 20*time.Second)
}
