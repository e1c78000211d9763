// Package auth is QTunnel's mutual authentication with a shared secret,
// bound to one TLS session.
//
// Both ends derive the same exporter value from their TLS session (RFC 8446
// section 7.5). The client sends HMAC-SHA256(secret, "client" | exporter);
// the server checks it in constant time and, only then, answers with
// HMAC-SHA256(secret, "server" | exporter). A man in the middle who
// terminates TLS with its own certificate holds two sessions with two
// different exporters, so it can neither replay the client's proof to the
// server nor forge the server's proof to the client: each side refuses it,
// even when the client pins nothing and the certificate is self-signed.
//
// The client speaks first so that the server reveals nothing, not even a
// proof to guess against, to a peer that has not proved the secret. The
// client's proof does let a middleman who lures the client guess the secret
// offline, which is why weak secrets get a warning (package secret).
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/qtunnel/qtunnel/core/proto"
	"github.com/qtunnel/qtunnel/core/secret"
)

// Errors a handshake can end with. Callers match them with errors.Is.
var (
	// ErrRejected: the server said the client's proof was wrong, which
	// means the two ends do not share the secret (or someone relayed the
	// proof from another TLS session).
	ErrRejected = errors.New("the server rejected our secret (do both ends use the same secret?)")
	// ErrServerProof: the server accepted us but could not prove it knows
	// the secret: it is not the server we meant, or someone is in the middle.
	ErrServerProof = errors.New("the server could not prove it knows the secret (someone in the middle, or not a QTunnel server)")
	// ErrNoVerdict: the server answered the client's proof with something
	// that is not a QTunnel answer, or not at all. A server that masquerades
	// as a web site treats a wrong proof like any other web visitor's bytes,
	// so this is what a wrong secret looks like there.
	ErrNoVerdict = errors.New("the server did not accept our proof of the secret (it answered like a web server, or not at all): the two ends' secrets differ, or this is not a QTunnel server")
	// ErrBadProof: (server side) the client's proof matched no secret.
	ErrBadProof = errors.New("the peer's proof of the secret is wrong")
	// ErrRetry: the server did not take the client's 0-RTT proof (too old,
	// replayed, or 0-RTT refused) and waits for a full proof.
	ErrRetry = errors.New("the server asks for a full proof")
)

// Role labels keep a client proof from being reflected as a server proof,
// and an early proof from being taken for either.
const (
	roleClient      = "qtunnel client proof v1"
	roleServer      = "qtunnel server proof v1"
	roleClientEarly = "qtunnel client early proof v1"
)

// Exporter returns the TLS session's exporter value the proofs are bound to.
func Exporter(cs tls.ConnectionState) ([]byte, error) {
	if !cs.HandshakeComplete {
		return nil, errors.New("TLS handshake not complete")
	}
	if cs.Version != tls.VersionTLS13 {
		return nil, fmt.Errorf("TLS version %#x: QTunnel requires TLS 1.3", cs.Version)
	}
	ekm, err := cs.ExportKeyingMaterial(proto.ExporterLabel, nil, 32)
	if err != nil {
		return nil, fmt.Errorf("export TLS keying material: %w", err)
	}
	return ekm, nil
}

func proof(role string, key, exporter []byte) [proto.ProofSize]byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(role))
	m.Write(exporter)
	var out [proto.ProofSize]byte
	m.Sum(out[:0])
	return out
}

// ClientProof is the proof a client sends for the session with this exporter.
func ClientProof(s secret.Secret, exporter []byte) [proto.ProofSize]byte {
	return proof(roleClient, s.Bytes(), exporter)
}

// ServerProof is the proof a server answers with.
func ServerProof(s secret.Secret, exporter []byte) [proto.ProofSize]byte {
	return proof(roleServer, s.Bytes(), exporter)
}

// EarlyProof is the proof a client sends in 0-RTT, bound to a time and a
// nonce instead of an exporter value (there is none before the handshake
// ends). See NewEarlyRequest and ReplayGuard.
func EarlyProof(s secret.Secret, unixMilli uint64, nonce [proto.NonceSize]byte) [proto.ProofSize]byte {
	var msg [8 + proto.NonceSize]byte
	binary.BigEndian.PutUint64(msg[:8], unixMilli)
	copy(msg[8:], nonce[:])
	return proof(roleClientEarly, s.Bytes(), msg[:])
}

// NewEarlyRequest makes a client's 0-RTT proof for now, with a fresh
// random nonce.
func NewEarlyRequest(s secret.Secret, now time.Time) (proto.EarlyAuthRequest, error) {
	r := proto.EarlyAuthRequest{UnixMilli: uint64(now.UnixMilli())}
	if _, err := rand.Read(r.Nonce[:]); err != nil {
		return r, fmt.Errorf("early proof nonce: %w", err)
	}
	r.Proof = EarlyProof(s, r.UnixMilli, r.Nonce)
	return r, nil
}

// VerifyEarly is Verify for a 0-RTT proof. Freshness is the caller's to
// check, with a ReplayGuard.
func VerifyEarly(req proto.EarlyAuthRequest, secrets []secret.Secret) (int, error) {
	return match(secrets, req.Proof, func(s secret.Secret) [proto.ProofSize]byte { return EarlyProof(s, req.UnixMilli, req.Nonce) })
}

// Client runs the client's half over rw, a stream of the TLS session whose
// exporter value is given. It returns nil only when the server has proved
// the secret.
func Client(rw io.ReadWriter, s secret.Secret, exporter []byte) error {
	if err := SendClientProof(rw, s, exporter); err != nil {
		return err
	}
	return CheckServerAnswer(rw, s, exporter)
}

// SendClientProofH3 is SendClientProof for a QUIC control stream: the
// proof travels in a frame that an HTTP/3 server ignores (proto.H3FrameType).
func SendClientProofH3(w io.Writer, s secret.Secret, exporter []byte) error {
	req := proto.AuthRequest{Proof: ClientProof(s, exporter)}
	if _, err := w.Write(proto.AppendH3Frame(nil, proto.AppendAuthRequest(nil, req))); err != nil {
		return fmt.Errorf("send proof: %w", err)
	}
	return nil
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// SendClientProof sends the client's half of Client. A client that may send
// before the answer arrives (its TLS session already authenticates the
// server) calls CheckServerAnswer later.
func SendClientProof(w io.Writer, s secret.Secret, exporter []byte) error {
	req := proto.AuthRequest{Proof: ClientProof(s, exporter)}
	if _, err := w.Write(proto.AppendAuthRequest(nil, req)); err != nil {
		return fmt.Errorf("send proof: %w", err)
	}
	return nil
}

// CheckServerAnswer reads the server's answer to the client's proof and
// returns nil only when the server accepted it and proved the secret.
func CheckServerAnswer(r io.Reader, s secret.Secret, exporter []byte) error {
	resp, err := proto.ReadAuthResponse(r)
	if errors.Is(err, proto.ErrVersion) || errors.Is(err, proto.ErrMalformed) || isTimeout(err) {
		return fmt.Errorf("%w (%w)", ErrNoVerdict, err)
	}
	if err != nil {
		return fmt.Errorf("read server's answer: %w", err)
	}
	switch resp.Status {
	case proto.AuthOK:
	case proto.AuthRetry:
		return ErrRetry
	default:
		return ErrRejected
	}
	want := ServerProof(s, exporter)
	if subtle.ConstantTimeCompare(want[:], resp.Proof[:]) != 1 {
		return ErrServerProof
	}
	return nil
}

// Verify returns the index of the secret in secrets that the client's proof
// matches, or ErrBadProof. Every secret is checked, whatever matched, so the
// time taken says nothing about which did.
func Verify(req proto.AuthRequest, secrets []secret.Secret, exporter []byte) (int, error) {
	return match(secrets, req.Proof, func(s secret.Secret) [proto.ProofSize]byte { return ClientProof(s, exporter) })
}

// match returns the index of the first secret whose proof, as want computes
// it, equals got. It compares in constant time against every secret, and
// never matches an empty one (it would let anyone prove it).
func match(secrets []secret.Secret, got [proto.ProofSize]byte, want func(secret.Secret) [proto.ProofSize]byte) (int, error) {
	found := -1
	for i, s := range secrets {
		if s.IsZero() {
			continue
		}
		w := want(s)
		if subtle.ConstantTimeCompare(w[:], got[:]) == 1 && found < 0 {
			found = i
		}
	}
	if found < 0 {
		return -1, ErrBadProof
	}
	return found, nil
}

// Server runs the server's half over rw: it reads the client's proof,
// checks it against secrets and answers. On a wrong proof it sends a
// rejection (so an honest client with a stale secret gets a clear error) and
// returns ErrBadProof; the caller must then close the session.
func Server(rw io.ReadWriter, secrets []secret.Secret, exporter []byte) (int, error) {
	req, err := proto.ReadAuthRequest(rw)
	if err != nil {
		return -1, fmt.Errorf("read client's proof: %w", err)
	}
	return Answer(rw, req, secrets, exporter)
}

// Answer is Server for a request already read.
func Answer(w io.Writer, req proto.AuthRequest, secrets []secret.Secret, exporter []byte) (int, error) {
	i, err := Verify(req, secrets, exporter)
	if err != nil {
		_, _ = w.Write(proto.AppendAuthResponse(nil, proto.AuthResponse{Status: proto.AuthRejected}))
		return -1, err
	}
	resp := proto.AuthResponse{Status: proto.AuthOK, Proof: ServerProof(secrets[i], exporter)}
	if _, err := w.Write(proto.AppendAuthResponse(nil, resp)); err != nil {
		return -1, fmt.Errorf("send proof: %w", err)
	}
	return i, nil
}
