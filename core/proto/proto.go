// Package proto defines QTunnel's wire format: the authentication frames
// exchanged once per TLS session, the header that opens every tunneled
// stream, and the QUIC error codes. It is pure encoding and decoding with no
// I/O policy of its own, so that every parser here can be fuzzed.
//
// Every frame starts with a version byte. All lengths are single bytes, so a
// frame is never larger than MaxFrameSize and a reader never allocates on a
// peer's say-so.
//
//	AuthRequest      (client -> server): version | proof[32]
//	EarlyAuthRequest (client -> server, in 0-RTT): early marker | unix ms[8] | nonce[16] | proof[32]
//	AuthResponse     (server -> client): version | status | proof[32] (proof only if status is AuthOK)
//	StreamRequest  (client -> server, first bytes of a stream): version | command | len | target[len]
//	StreamResponse (server -> client, first bytes back):        version | status  | len | message[len]
//
// A heartbeat stream (CmdHeartbeat, no target) then carries single bytes
// that the server echoes: a client with several servers measures each one
// and notices a dead one within a second (see transport.MultiDialer).
package proto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// ALPNQUIC is the TLS application protocol a QUIC client offers and the
// server takes: HTTP/3's, so that a QTunnel connection looks like a web
// browser's and a server can show a web site to those without the secret.
const ALPNQUIC = "h3"

// ALPNTCP are the TLS application protocols of TLS/TCP, in the client's
// order of preference: those of an HTTPS client, for the same reason.
var ALPNTCP = []string{"h2", "http/1.1"}

// Version is the only frame version this code speaks.
const Version byte = 1

// ExporterLabel is the TLS exporter label (RFC 8446 section 7.5) whose
// output binds the secret proofs to one TLS session.
const ExporterLabel = "EXPORTER-qtunnel-auth-v1"

// ProofSize is the size of a secret proof (HMAC-SHA256).
const ProofSize = 32

// MaxTargetLen is the longest target name a StreamRequest can carry.
const MaxTargetLen = 255

// MaxFrameSize bounds every frame defined here.
const MaxFrameSize = 3 + 255

// ErrVersion is returned for a frame whose version byte is not Version.
var ErrVersion = errors.New("unsupported protocol version")

// ErrMalformed is returned for a frame that is not well formed.
var ErrMalformed = errors.New("malformed frame")

// AuthStatus is the server's verdict on a client's proof.
type AuthStatus byte

// Auth verdicts.
const (
	AuthOK       AuthStatus = 0
	AuthRejected AuthStatus = 1
	// AuthRetry answers an EarlyAuthRequest the server will not take (too
	// old, seen before, or not sent in 0-RTT): the client sends a full
	// AuthRequest next, and the streams it already sent wait for it.
	AuthRetry AuthStatus = 2
)

// EarlyAuthMarker is the first byte of an EarlyAuthRequest: the version
// with the high bit set, so that one byte tells the two requests apart.
const EarlyAuthMarker = 0x80 | Version

// NonceSize is the size of an EarlyAuthRequest's nonce.
const NonceSize = 16

// EarlyAuthRequest is the client's proof in 0-RTT, before the TLS handshake
// has finished and so before there is an exporter value to bind it to. It
// is bound instead to a time and a random nonce, which the server accepts
// once (see auth.ReplayGuard); only a client resuming a session whose
// server proved the secret sends it, so only that server can read it.
type EarlyAuthRequest struct {
	UnixMilli uint64
	Nonce     [NonceSize]byte
	Proof     [ProofSize]byte
}

// EarlyAuthRequestSize is the encoded size of an EarlyAuthRequest.
const EarlyAuthRequestSize = 1 + 8 + NonceSize + ProofSize

// ClientAuth is the first frame of the control stream: an AuthRequest, or
// an EarlyAuthRequest if Early.
type ClientAuth struct {
	Early    bool
	Request  AuthRequest
	EarlyReq EarlyAuthRequest
}

// AuthRequest carries the client's proof of the secret.
type AuthRequest struct {
	Proof [ProofSize]byte
}

// AuthResponse carries the server's verdict and, if it accepted the client,
// the server's own proof of the secret.
type AuthResponse struct {
	Status AuthStatus
	Proof  [ProofSize]byte
}

// Command says what a stream is for.
type Command byte

// Commands.
const (
	// CmdConnect asks the server to connect the stream to a TCP target.
	CmdConnect Command = 1
	// CmdHeartbeat asks the server to echo every byte the client sends on
	// the stream, for as long as it stays open; it names no target.
	CmdHeartbeat Command = 2
)

// StreamRequest opens a tunneled stream.
type StreamRequest struct {
	Command Command
	// Target names what the client wants to reach. Empty means the server's
	// default backend; the server decides what a name maps to.
	Target string
}

// Status is the server's answer to a StreamRequest.
type Status byte

// Stream statuses. A client maps each to a plain-words message.
const (
	StatusOK             Status = 0
	StatusNotAllowed     Status = 1 // the target is not one the server allows
	StatusDialFailed     Status = 2 // the backend refused or could not be reached
	StatusDialTimeout    Status = 3 // the backend did not answer in time
	StatusDraining       Status = 4 // the server is shutting down
	StatusBadRequest     Status = 5 // the request was not understood
	StatusOverloaded     Status = 6 // a server limit was reached
	maxKnownStreamStatus        = StatusOverloaded
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusNotAllowed:
		return "target not allowed"
	case StatusDialFailed:
		return "backend unreachable"
	case StatusDialTimeout:
		return "backend timed out"
	case StatusDraining:
		return "server shutting down"
	case StatusBadRequest:
		return "bad request"
	case StatusOverloaded:
		return "server overloaded"
	}
	return fmt.Sprintf("status %d", byte(s))
}

// StreamResponse answers a StreamRequest. Message is a short human-readable
// detail for a failure; it never contains secrets.
type StreamResponse struct {
	Status  Status
	Message string
}

// QUIC application error codes, sent when a connection is closed.
const (
	CodeNoError        uint64 = 0
	CodeAuthFailed     uint64 = 0x101 // the client's proof was wrong
	CodeProtocol       uint64 = 0x102 // a peer broke this protocol
	CodeServerShutdown uint64 = 0x103
	CodeClientShutdown uint64 = 0x104
	CodeAuthTimeout    uint64 = 0x105
)

// QUIC stream error codes, sent when a stream is reset.
const (
	// StreamCodeAborted: the TCP connection at one end was reset or failed;
	// the other end resets its TCP connection too.
	StreamCodeAborted uint64 = 0x201
	// StreamCodeRefused: the server would not or could not serve the stream.
	StreamCodeRefused uint64 = 0x202
)

// AppendAuthRequest appends the encoded request to b.
func AppendAuthRequest(b []byte, r AuthRequest) []byte {
	b = append(b, Version)
	return append(b, r.Proof[:]...)
}

// ParseAuthRequest decodes an AuthRequest from exactly AuthRequestSize bytes.
func ParseAuthRequest(b []byte) (AuthRequest, error) {
	var r AuthRequest
	if len(b) != AuthRequestSize {
		return r, ErrMalformed
	}
	if b[0] != Version {
		return r, ErrVersion
	}
	copy(r.Proof[:], b[1:])
	return r, nil
}

// AuthRequestSize is the encoded size of an AuthRequest.
const AuthRequestSize = 1 + ProofSize

// AuthResponseSize is the encoded size of an AuthResponse.
const AuthResponseSize = 2 + ProofSize

// ReadAuthRequest reads one AuthRequest from r.
func ReadAuthRequest(r io.Reader) (AuthRequest, error) {
	var buf [AuthRequestSize]byte
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return AuthRequest{}, err
	}
	return ParseAuthRequest(buf[:])
}

// AppendEarlyAuthRequest appends the encoded request to b.
func AppendEarlyAuthRequest(b []byte, r EarlyAuthRequest) []byte {
	b = append(b, EarlyAuthMarker)
	b = binary.BigEndian.AppendUint64(b, r.UnixMilli)
	b = append(b, r.Nonce[:]...)
	return append(b, r.Proof[:]...)
}

// ParseEarlyAuthRequest decodes an EarlyAuthRequest from exactly
// EarlyAuthRequestSize bytes.
func ParseEarlyAuthRequest(b []byte) (EarlyAuthRequest, error) {
	var r EarlyAuthRequest
	if len(b) != EarlyAuthRequestSize {
		return r, ErrMalformed
	}
	if b[0] != EarlyAuthMarker {
		return r, ErrVersion
	}
	r.UnixMilli = binary.BigEndian.Uint64(b[1:9])
	copy(r.Nonce[:], b[9:9+NonceSize])
	copy(r.Proof[:], b[9+NonceSize:])
	return r, nil
}

// ReadClientAuth reads the first frame of a control stream: either request.
func ReadClientAuth(r io.Reader) (ClientAuth, error) {
	var buf [EarlyAuthRequestSize]byte
	if _, err := io.ReadFull(r, buf[:1]); err != nil {
		return ClientAuth{}, err
	}
	switch buf[0] {
	case Version:
		if _, err := io.ReadFull(r, buf[1:AuthRequestSize]); err != nil {
			return ClientAuth{}, noEOF(err)
		}
		req, err := ParseAuthRequest(buf[:AuthRequestSize])
		return ClientAuth{Request: req}, err
	case EarlyAuthMarker:
		if _, err := io.ReadFull(r, buf[1:]); err != nil {
			return ClientAuth{}, noEOF(err)
		}
		req, err := ParseEarlyAuthRequest(buf[:])
		return ClientAuth{Early: true, EarlyReq: req}, err
	}
	return ClientAuth{}, ErrVersion
}

// AppendAuthResponse appends the encoded response to b. A rejection carries
// a zero proof, so the frame has one size whatever the verdict.
func AppendAuthResponse(b []byte, r AuthResponse) []byte {
	b = append(b, Version, byte(r.Status))
	if r.Status != AuthOK {
		var zero [ProofSize]byte
		return append(b, zero[:]...)
	}
	return append(b, r.Proof[:]...)
}

// ParseAuthResponse decodes an AuthResponse from exactly AuthResponseSize bytes.
func ParseAuthResponse(b []byte) (AuthResponse, error) {
	var r AuthResponse
	if len(b) != AuthResponseSize {
		return r, ErrMalformed
	}
	if b[0] != Version {
		return r, ErrVersion
	}
	r.Status = AuthStatus(b[1])
	if r.Status != AuthOK && r.Status != AuthRejected && r.Status != AuthRetry {
		return AuthResponse{}, ErrMalformed
	}
	copy(r.Proof[:], b[2:])
	return r, nil
}

// ReadAuthResponse reads one AuthResponse from r.
func ReadAuthResponse(r io.Reader) (AuthResponse, error) {
	var buf [AuthResponseSize]byte
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return AuthResponse{}, err
	}
	return ParseAuthResponse(buf[:])
}

// AppendStreamRequest appends the encoded request to b.
func AppendStreamRequest(b []byte, r StreamRequest) ([]byte, error) {
	if len(r.Target) > MaxTargetLen {
		return b, fmt.Errorf("target name is %d bytes, longer than %d: %w", len(r.Target), MaxTargetLen, ErrMalformed)
	}
	if r.Command != CmdConnect && r.Command != CmdHeartbeat {
		return b, fmt.Errorf("unknown command %d: %w", r.Command, ErrMalformed)
	}
	if r.Command == CmdHeartbeat && r.Target != "" {
		return b, fmt.Errorf("a heartbeat names no target: %w", ErrMalformed)
	}
	if !validName([]byte(r.Target)) {
		return b, fmt.Errorf("target name has control characters: %w", ErrMalformed)
	}
	b = append(b, Version, byte(r.Command), byte(len(r.Target))) // #nosec G115 -- len checked against MaxTargetLen (255) above
	return append(b, r.Target...), nil
}

// ReadStreamRequest reads one StreamRequest from r and nothing after it.
func ReadStreamRequest(r io.Reader) (StreamRequest, error) {
	var buf [MaxFrameSize]byte
	if _, err := io.ReadFull(r, buf[:3]); err != nil {
		return StreamRequest{}, err
	}
	n := int(buf[2])
	if _, err := io.ReadFull(r, buf[3:3+n]); err != nil {
		return StreamRequest{}, noEOF(err)
	}
	req, _, err := ParseStreamRequest(buf[:3+n])
	return req, err
}

// ParseStreamRequest decodes a StreamRequest from the start of b and returns
// how many bytes it used. It returns io.ErrUnexpectedEOF if b is too short.
func ParseStreamRequest(b []byte) (StreamRequest, int, error) {
	if len(b) < 3 {
		return StreamRequest{}, 0, io.ErrUnexpectedEOF
	}
	if b[0] != Version {
		return StreamRequest{}, 0, ErrVersion
	}
	cmd := Command(b[1])
	if cmd != CmdConnect && cmd != CmdHeartbeat {
		return StreamRequest{}, 0, fmt.Errorf("unknown command %d: %w", cmd, ErrMalformed)
	}
	n := int(b[2])
	if cmd == CmdHeartbeat && n != 0 {
		return StreamRequest{}, 0, fmt.Errorf("a heartbeat names no target: %w", ErrMalformed)
	}
	if len(b) < 3+n {
		return StreamRequest{}, 0, io.ErrUnexpectedEOF
	}
	target := b[3 : 3+n]
	if !validName(target) {
		return StreamRequest{}, 0, fmt.Errorf("target name has control characters: %w", ErrMalformed)
	}
	return StreamRequest{Command: cmd, Target: string(target)}, 3 + n, nil
}

// AppendStreamResponse appends the encoded response to b. The message is
// made safe to parse: control characters become '?', and one longer than
// 255 bytes is cut at a character boundary.
func AppendStreamResponse(b []byte, r StreamResponse) []byte {
	msg := CleanMessage(r.Message)
	b = append(b, Version, byte(r.Status), byte(len(msg))) // #nosec G115 -- CleanMessage cuts to 255 bytes
	return append(b, msg...)
}

// ReadStreamResponse reads one StreamResponse from r and nothing after it.
func ReadStreamResponse(r io.Reader) (StreamResponse, error) {
	var buf [MaxFrameSize]byte
	if _, err := io.ReadFull(r, buf[:3]); err != nil {
		return StreamResponse{}, err
	}
	n := int(buf[2])
	if _, err := io.ReadFull(r, buf[3:3+n]); err != nil {
		return StreamResponse{}, noEOF(err)
	}
	resp, _, err := ParseStreamResponse(buf[:3+n])
	return resp, err
}

// ParseStreamResponse decodes a StreamResponse from the start of b and
// returns how many bytes it used. It returns io.ErrUnexpectedEOF if b is too
// short.
func ParseStreamResponse(b []byte) (StreamResponse, int, error) {
	if len(b) < 3 {
		return StreamResponse{}, 0, io.ErrUnexpectedEOF
	}
	if b[0] != Version {
		return StreamResponse{}, 0, ErrVersion
	}
	st := Status(b[1])
	if st > maxKnownStreamStatus {
		// Unknown statuses from a newer server are failures all the same.
		st = StatusBadRequest
	}
	n := int(b[2])
	if len(b) < 3+n {
		return StreamResponse{}, 0, io.ErrUnexpectedEOF
	}
	msg := b[3 : 3+n]
	if !validName(msg) {
		// A message is for a log line: refuse bytes that could forge one.
		return StreamResponse{}, 0, fmt.Errorf("message has control characters: %w", ErrMalformed)
	}
	return StreamResponse{Status: st, Message: string(msg)}, 3 + n, nil
}

// CleanMessage returns msg with control characters replaced by '?' and cut
// to at most 255 bytes without splitting a UTF-8 sequence.
func CleanMessage(msg string) string {
	clean := []byte(msg)
	for i, c := range clean {
		if c < 0x20 || c == 0x7f {
			clean[i] = '?'
		}
	}
	if len(clean) > 255 {
		clean = clean[:255]
		for len(clean) > 0 && !utf8.Valid(clean) {
			clean = clean[:len(clean)-1]
		}
	}
	return string(clean)
}

// ValidTarget reports whether name can be sent as a StreamRequest target.
func ValidTarget(name string) bool {
	return len(name) <= MaxTargetLen && validName([]byte(name))
}

// validName reports whether b has no ASCII control characters.
func validName(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// noEOF turns a clean EOF in the middle of a frame into ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
