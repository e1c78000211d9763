package auth_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/core/auth"
	"github.com/qtunnel/qtunnel/core/cert"
	"github.com/qtunnel/qtunnel/core/proto"
	"github.com/qtunnel/qtunnel/core/secret"
)

// serverCert is generated once for all tests.
var serverCert = sync.OnceValues(func() (tls.Certificate, error) {
	certPEM, keyPEM, err := cert.Generate([]string{"localhost", "127.0.0.1"})
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
})

// session is one TLS session: both of its ends, handshaken, and the exporter
// value each end computed.
type session struct {
	client, server       *tls.Conn
	clientExp, serverExp []byte
}

// newSession makes a TLS session over net.Pipe, capped at maxVersion.
func newSession(t *testing.T, maxVersion uint16) session {
	t.Helper()
	c, err := serverCert()
	if err != nil {
		t.Fatalf("certificate: %v", err)
	}
	cp, sp := net.Pipe()
	srv := tls.Server(sp, &tls.Config{
		Certificates: []tls.Certificate{c},
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   maxVersion,
		NextProtos:   []string{proto.ALPNQUIC},
	})
	cli := tls.Client(cp, &tls.Config{
		InsecureSkipVerify: true, // trust comes from the secret proof
		MinVersion:         tls.VersionTLS12,
		MaxVersion:         maxVersion,
		NextProtos:         []string{proto.ALPNQUIC},
	})
	// Close the pipe itself: tls.Conn.Close would wait up to 5 s to send
	// close_notify to a peer that no longer reads.
	t.Cleanup(func() {
		_ = cp.Close()
		_ = sp.Close()
	})
	// Bound everything a test does on this session, so that a bug shows up
	// as a failure rather than a hung test.
	deadline := time.Now().Add(10 * time.Second)
	_ = cli.SetDeadline(deadline)
	_ = srv.SetDeadline(deadline)
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	s := session{client: cli, server: srv}
	if maxVersion == tls.VersionTLS13 {
		if s.clientExp, err = auth.Exporter(cli.ConnectionState()); err != nil {
			t.Fatalf("client exporter: %v", err)
		}
		if s.serverExp, err = auth.Exporter(srv.ConnectionState()); err != nil {
			t.Fatalf("server exporter: %v", err)
		}
	}
	return s
}

func mustSecret(t testing.TB, s string) secret.Secret {
	t.Helper()
	sec, err := secret.New([]byte(s))
	if err != nil {
		t.Fatalf("secret.New(%q): %v", s, err)
	}
	return sec
}

type serverResult struct {
	index int
	err   error
}

// handshake runs auth.Client and auth.Server at once on the two ends.
func handshake(s session, clientSecret secret.Secret, secrets []secret.Secret) (srv serverResult, clientErr error) {
	done := make(chan serverResult, 1)
	go func() {
		i, err := auth.Server(s.server, secrets, s.serverExp)
		done <- serverResult{i, err}
	}()
	clientErr = auth.Client(s.client, clientSecret, s.clientExp)
	return <-done, clientErr
}

func TestExporterTLS13(t *testing.T) {
	a := newSession(t, tls.VersionTLS13)
	b := newSession(t, tls.VersionTLS13)
	if len(a.clientExp) != 32 {
		t.Fatalf("exporter is %d bytes, want 32", len(a.clientExp))
	}
	if !bytes.Equal(a.clientExp, a.serverExp) {
		t.Fatalf("the two ends of one session disagree: %x vs %x", a.clientExp, a.serverExp)
	}
	if bytes.Equal(a.clientExp, b.clientExp) {
		t.Fatalf("two sessions have the same exporter %x", a.clientExp)
	}
	// The exporter is the RFC 8446 one with QTunnel's label.
	cs := a.client.ConnectionState()
	want, err := cs.ExportKeyingMaterial(proto.ExporterLabel, nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.clientExp, want) {
		t.Fatalf("Exporter = %x, want the %q exporter %x", a.clientExp, proto.ExporterLabel, want)
	}
}

func TestExporterRefusesOldTLS(t *testing.T) {
	s := newSession(t, tls.VersionTLS12)
	for name, cs := range map[string]tls.ConnectionState{
		"client":  s.client.ConnectionState(),
		"server":  s.server.ConnectionState(),
		"zero":    {},
		"TLS 1.1": {Version: tls.VersionTLS11},
	} {
		if name == "client" && cs.Version != tls.VersionTLS12 {
			t.Fatalf("session negotiated %#x, want TLS 1.2", cs.Version)
		}
		ekm, err := auth.Exporter(cs)
		if err == nil || ekm != nil {
			t.Errorf("%s: Exporter(%#x) = %x, %v; want an error", name, cs.Version, ekm, err)
		}
	}
}

func TestHandshakeMatchingSecret(t *testing.T) {
	s := newSession(t, tls.VersionTLS13)
	sec := mustSecret(t, "correct horse battery staple")
	srv, clientErr := handshake(s, sec, []secret.Secret{sec})
	if clientErr != nil {
		t.Fatalf("Client: %v", clientErr)
	}
	if srv.err != nil || srv.index != 0 {
		t.Fatalf("Server = %d, %v; want 0, nil", srv.index, srv.err)
	}
	// Neither side read past its frame: the session carries on.
	go func() { _, _ = s.server.Write([]byte("after auth")) }()
	buf := make([]byte, len("after auth"))
	if _, err := io.ReadFull(s.client, buf); err != nil || string(buf) != "after auth" {
		t.Fatalf("after auth read %q, %v", buf, err)
	}
}

func TestHandshakeRotation(t *testing.T) {
	old := mustSecret(t, "old-secret-2023")
	cur := mustSecret(t, "current-secret-2024")
	next := mustSecret(t, "next-secret-2025")
	secrets := []secret.Secret{old, cur, next}
	tests := []struct {
		name    string
		client  secret.Secret
		secrets []secret.Secret
		want    int
	}{
		{"first", old, secrets, 0},
		{"middle", cur, secrets, 1},
		{"last", next, secrets, 2},
		{"duplicate gives first", cur, []secret.Secret{next, cur, cur}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t, tls.VersionTLS13)
			srv, clientErr := handshake(s, tt.client, tt.secrets)
			if clientErr != nil {
				t.Fatalf("Client: %v", clientErr)
			}
			if srv.err != nil || srv.index != tt.want {
				t.Fatalf("Server = %d, %v; want %d, nil", srv.index, srv.err, tt.want)
			}
		})
	}
}

func TestHandshakeWrongSecret(t *testing.T) {
	tests := []struct {
		name    string
		client  string
		secrets []string
	}{
		{"different", "client-secret", []string{"server-secret"}},
		{"none of several", "client-secret", []string{"a-secret", "b-secret", "c-secret"}},
		{"prefix", "secret", []string{"secret2"}},
		{"trailing newline", "secret\n", []string{"secret"}},
		{"no secrets on server", "client-secret", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t, tls.VersionTLS13)
			var secrets []secret.Secret
			for _, v := range tt.secrets {
				secrets = append(secrets, mustSecret(t, v))
			}
			srv, clientErr := handshake(s, mustSecret(t, tt.client), secrets)
			if !errors.Is(clientErr, auth.ErrRejected) {
				t.Fatalf("Client err = %v, want ErrRejected", clientErr)
			}
			if !errors.Is(srv.err, auth.ErrBadProof) || srv.index != -1 {
				t.Fatalf("Server = %d, %v; want -1, ErrBadProof", srv.index, srv.err)
			}
		})
	}
}

// TestReplayIntoOtherSession: a proof made for session A is refused in
// session B, even with the right secret on the server.
func TestReplayIntoOtherSession(t *testing.T) {
	sec := mustSecret(t, "shared-secret-for-replay")
	a := newSession(t, tls.VersionTLS13)
	b := newSession(t, tls.VersionTLS13)

	req := proto.AuthRequest{Proof: auth.ClientProof(sec, a.clientExp)}
	done := make(chan serverResult, 1)
	go func() {
		i, err := auth.Server(b.server, []secret.Secret{sec}, b.serverExp)
		done <- serverResult{i, err}
	}()
	if _, err := b.client.Write(proto.AppendAuthRequest(nil, req)); err != nil {
		t.Fatal(err)
	}
	resp, err := proto.ReadAuthResponse(b.client)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	if resp.Status != proto.AuthRejected || resp.Proof != ([proto.ProofSize]byte{}) {
		t.Fatalf("answer to a replayed proof = %+v, want a rejection with no proof", resp)
	}
	if r := <-done; !errors.Is(r.err, auth.ErrBadProof) {
		t.Fatalf("Server = %d, %v; want ErrBadProof", r.index, r.err)
	}

	// Control: the proof for session B itself is accepted.
	c := newSession(t, tls.VersionTLS13)
	if srv, clientErr := handshake(c, sec, []secret.Secret{sec}); clientErr != nil || srv.err != nil {
		t.Fatalf("control handshake: client %v, server %v", clientErr, srv.err)
	}
}

// TestManInTheMiddleRelay: a middleman terminates the client's TLS session
// with its own and opens another to the server, then relays the auth frames
// unchanged. Both ends refuse, although they share the secret.
func TestManInTheMiddleRelay(t *testing.T) {
	sec := mustSecret(t, "shared-secret-for-mitm")
	front := newSession(t, tls.VersionTLS13) // client <-> middleman
	back := newSession(t, tls.VersionTLS13)  // middleman <-> server
	if bytes.Equal(front.clientExp, back.serverExp) {
		t.Fatal("the two sessions share an exporter")
	}

	relayErr := make(chan error, 1)
	go func() {
		relayErr <- func() error {
			req := make([]byte, proto.AuthRequestSize)
			if _, err := io.ReadFull(front.server, req); err != nil {
				return err
			}
			if _, err := back.client.Write(req); err != nil {
				return err
			}
			resp := make([]byte, proto.AuthResponseSize)
			if _, err := io.ReadFull(back.client, resp); err != nil {
				return err
			}
			_, err := front.server.Write(resp)
			return err
		}()
	}()
	done := make(chan serverResult, 1)
	go func() {
		i, err := auth.Server(back.server, []secret.Secret{sec}, back.serverExp)
		done <- serverResult{i, err}
	}()
	clientErr := auth.Client(front.client, sec, front.clientExp)
	if !errors.Is(clientErr, auth.ErrRejected) {
		t.Fatalf("Client err = %v, want ErrRejected", clientErr)
	}
	if r := <-done; !errors.Is(r.err, auth.ErrBadProof) {
		t.Fatalf("Server = %d, %v; want ErrBadProof", r.index, r.err)
	}
	if err := <-relayErr; err != nil {
		t.Fatalf("relay: %v", err)
	}
}

// fakeServer answers one AuthRequest on conn with resp and reports the
// request it read.
func fakeServer(conn net.Conn, resp []byte) <-chan []byte {
	got := make(chan []byte, 1)
	go func() {
		defer conn.Close()
		req := make([]byte, proto.AuthRequestSize)
		if _, err := io.ReadFull(conn, req); err != nil {
			got <- nil
			return
		}
		got <- req
		_, _ = conn.Write(resp)
	}()
	return got
}

func TestClientAgainstFakeServer(t *testing.T) {
	sec := mustSecret(t, "the-real-secret")
	other := mustSecret(t, "some-other-secret")
	exporter := bytes.Repeat([]byte{0x5a}, 32)
	otherExporter := bytes.Repeat([]byte{0xa5}, 32)

	okResp := func(p [proto.ProofSize]byte) []byte {
		return proto.AppendAuthResponse(nil, proto.AuthResponse{Status: proto.AuthOK, Proof: p})
	}
	flipped := auth.ServerProof(sec, exporter)
	flipped[0] ^= 1
	good := okResp(auth.ServerProof(sec, exporter))
	badVersion := bytes.Clone(good)
	badVersion[0] = 2
	badStatus := bytes.Clone(good)
	badStatus[1] = 9

	tests := []struct {
		name string
		resp []byte
		want error // nil means success
	}{
		{"honest", good, nil},
		{"zero proof", okResp([proto.ProofSize]byte{}), auth.ErrServerProof},
		{"one bit off", okResp(flipped), auth.ErrServerProof},
		{"other secret", okResp(auth.ServerProof(other, exporter)), auth.ErrServerProof},
		{"other session", okResp(auth.ServerProof(sec, otherExporter)), auth.ErrServerProof},
		{"reflected client proof", okResp(auth.ClientProof(sec, exporter)), auth.ErrServerProof},
		{"rejected", proto.AppendAuthResponse(nil, proto.AuthResponse{Status: proto.AuthRejected}), auth.ErrRejected},
		{"truncated", good[:10], io.ErrUnexpectedEOF},
		{"nothing", nil, io.EOF},
		{"wrong version", badVersion, proto.ErrVersion},
		{"unknown status", badStatus, proto.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cliConn, srvConn := net.Pipe()
			defer cliConn.Close()
			_ = cliConn.SetDeadline(time.Now().Add(10 * time.Second))
			got := fakeServer(srvConn, tt.resp)
			err := auth.Client(cliConn, sec, exporter)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Client: %v", err)
				}
			} else if !errors.Is(err, tt.want) {
				t.Fatalf("Client err = %v, want %v", err, tt.want)
			}
			req := <-got
			wantReq := proto.AppendAuthRequest(nil, proto.AuthRequest{Proof: auth.ClientProof(sec, exporter)})
			if !bytes.Equal(req, wantReq) {
				t.Fatalf("client sent %x, want %x", req, wantReq)
			}
		})
	}
}

func TestClientWriteError(t *testing.T) {
	cliConn, srvConn := net.Pipe()
	srvConn.Close()
	err := auth.Client(cliConn, mustSecret(t, "x-secret"), make([]byte, 32))
	if err == nil || errors.Is(err, auth.ErrRejected) || errors.Is(err, auth.ErrServerProof) {
		t.Fatalf("Client on a closed pipe err = %v, want a send error", err)
	}
}

func TestProofs(t *testing.T) {
	sec := mustSecret(t, "proof-secret")
	other := mustSecret(t, "proof-secret2")
	e1 := bytes.Repeat([]byte{1}, 32)
	e2 := bytes.Repeat([]byte{2}, 32)

	if auth.ClientProof(sec, e1) == auth.ServerProof(sec, e1) {
		t.Fatal("ClientProof == ServerProof: a client's proof could be reflected as the server's")
	}
	if again := auth.ClientProof(sec, e1); auth.ClientProof(sec, e1) != again {
		t.Fatal("ClientProof is not deterministic")
	}
	distinct := map[[proto.ProofSize]byte]string{}
	for name, p := range map[string][proto.ProofSize]byte{
		"client e1":       auth.ClientProof(sec, e1),
		"client e2":       auth.ClientProof(sec, e2),
		"server e1":       auth.ServerProof(sec, e1),
		"server e2":       auth.ServerProof(sec, e2),
		"client other e1": auth.ClientProof(other, e1),
		"server other e1": auth.ServerProof(other, e1),
		"client nil":      auth.ClientProof(sec, nil),
	} {
		if prev, ok := distinct[p]; ok {
			t.Errorf("%s and %s give the same proof %x", prev, name, p)
		}
		distinct[p] = name
	}
}

func TestVerify(t *testing.T) {
	a := mustSecret(t, "secret-a")
	b := mustSecret(t, "secret-b")
	exp := bytes.Repeat([]byte{7}, 32)
	tests := []struct {
		name    string
		proof   [proto.ProofSize]byte
		secrets []secret.Secret
		want    int
	}{
		{"a of a,b", auth.ClientProof(a, exp), []secret.Secret{a, b}, 0},
		{"b of a,b", auth.ClientProof(b, exp), []secret.Secret{a, b}, 1},
		{"server proof is not a client proof", auth.ServerProof(a, exp), []secret.Secret{a, b}, -1},
		{"other exporter", auth.ClientProof(a, exp[:31]), []secret.Secret{a, b}, -1},
		{"no secrets", auth.ClientProof(a, exp), nil, -1},
		{"zero proof", [proto.ProofSize]byte{}, []secret.Secret{a}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i, err := auth.Verify(proto.AuthRequest{Proof: tt.proof}, tt.secrets, exp)
			if i != tt.want {
				t.Fatalf("Verify = %d, %v; want %d", i, err, tt.want)
			}
			if (tt.want < 0) != errors.Is(err, auth.ErrBadProof) {
				t.Fatalf("Verify err = %v", err)
			}
		})
	}
}

// rw is a bytes.Reader for the client's bytes and a buffer for the answer.
type rw struct {
	io.Reader
	out bytes.Buffer
}

func (r *rw) Write(p []byte) (int, error) { return r.out.Write(p) }

func TestServerErrors(t *testing.T) {
	sec := mustSecret(t, "server-error-secret")
	exp := bytes.Repeat([]byte{3}, 32)
	good := proto.AppendAuthRequest(nil, proto.AuthRequest{Proof: auth.ClientProof(sec, exp)})
	badVersion := bytes.Clone(good)
	badVersion[0] = 0
	tests := []struct {
		name       string
		in         []byte
		want       error
		wantAnswer bool // a rejection frame is written
	}{
		{"empty", nil, io.EOF, false},
		{"truncated", good[:20], io.ErrUnexpectedEOF, false},
		{"wrong version", badVersion, proto.ErrVersion, false},
		{"bad proof", proto.AppendAuthRequest(nil, proto.AuthRequest{}), auth.ErrBadProof, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := &rw{Reader: bytes.NewReader(tt.in)}
			i, err := auth.Server(conn, []secret.Secret{sec}, exp)
			if i != -1 || !errors.Is(err, tt.want) {
				t.Fatalf("Server = %d, %v; want -1, %v", i, err, tt.want)
			}
			rejection := proto.AppendAuthResponse(nil, proto.AuthResponse{Status: proto.AuthRejected})
			if tt.wantAnswer && !bytes.Equal(conn.out.Bytes(), rejection) {
				t.Fatalf("answer = %x, want rejection %x", conn.out.Bytes(), rejection)
			}
			if !tt.wantAnswer && conn.out.Len() != 0 {
				t.Fatalf("answered %x to a frame it could not read", conn.out.Bytes())
			}
		})
	}
}

// failWriter accepts reads but fails every write.
type failWriter struct{ io.Reader }

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("write failed") }

func TestServerWriteError(t *testing.T) {
	sec := mustSecret(t, "server-write-secret")
	exp := bytes.Repeat([]byte{4}, 32)
	good := proto.AppendAuthRequest(nil, proto.AuthRequest{Proof: auth.ClientProof(sec, exp)})
	i, err := auth.Server(failWriter{bytes.NewReader(good)}, []secret.Secret{sec}, exp)
	if err == nil || i != -1 {
		t.Fatalf("Server with a failing writer = %d, %v; want -1 and an error", i, err)
	}
}

func TestExporterRefusesUnfinishedHandshake(t *testing.T) {
	if _, err := auth.Exporter(tls.ConnectionState{Version: tls.VersionTLS13}); err == nil {
		t.Fatal("Exporter accepted a state without a completed handshake")
	}
}

// An empty secret must never verify, whatever the proof.
func TestVerifySkipsEmptySecret(t *testing.T) {
	exp := bytes.Repeat([]byte{7}, 32)
	var req proto.AuthRequest
	req.Proof = auth.ClientProof(secret.Secret{}, exp) // HMAC with an empty key
	if _, err := auth.Verify(req, []secret.Secret{{}}, exp); !errors.Is(err, auth.ErrBadProof) {
		t.Fatalf("Verify with an empty secret = %v, want ErrBadProof", err)
	}
}

func TestEarlyProof(t *testing.T) {
	s1, s2 := mustSecret(t, "first secret that is long enough 1234567"), mustSecret(t, "second secret that is long enough 765432")
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	req, err := auth.NewEarlyRequest(s2, now)
	if err != nil {
		t.Fatal(err)
	}
	if req.UnixMilli != uint64(now.UnixMilli()) || req.Nonce == ([proto.NonceSize]byte{}) {
		t.Fatalf("request %+v: want now's time and a random nonce", req)
	}
	if i, err := auth.VerifyEarly(req, []secret.Secret{s1, s2}); err != nil || i != 1 {
		t.Fatalf("auth.VerifyEarly = %d, %v; want 1, nil", i, err)
	}
	if _, err := auth.VerifyEarly(req, []secret.Secret{s1}); !errors.Is(err, auth.ErrBadProof) {
		t.Fatalf("wrong secret: %v, want auth.ErrBadProof", err)
	}
	// The proof covers the time and the nonce: changing either breaks it.
	moved := req
	moved.UnixMilli++
	if _, err := auth.VerifyEarly(moved, []secret.Secret{s2}); !errors.Is(err, auth.ErrBadProof) {
		t.Fatalf("changed time accepted: %v", err)
	}
	moved = req
	moved.Nonce[0] ^= 1
	if _, err := auth.VerifyEarly(moved, []secret.Secret{s2}); !errors.Is(err, auth.ErrBadProof) {
		t.Fatalf("changed nonce accepted: %v", err)
	}
	// An early proof is no full proof for any exporter, nor the reverse.
	full := auth.ClientProof(s2, req.Nonce[:])
	if full == req.Proof {
		t.Fatal("early and full proofs coincide")
	}
	again, _ := auth.NewEarlyRequest(s2, now)
	if again.Nonce == req.Nonce {
		t.Fatal("two early requests share a nonce")
	}
}
