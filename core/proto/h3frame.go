package proto

import (
	"bytes"
	"errors"
	"io"
)

// H3FrameType wraps the first frame of a QUIC client's control stream. It
// is one of the HTTP/3 frame types that RFC 9114 (section 7.2.8) reserves
// to be ignored (0x1f*N + 0x21), so that an HTTP/3 server skips the whole
// frame. A QTunnel server can thus hand a stream that does not begin with
// it, or whose proof is wrong, to an HTTP/3 server as it stands: what the
// peer then sees is what any HTTP/3 server would show it.
const H3FrameType uint64 = 0x1f*0x2a5b + 0x21

// MaxH3FramePayload bounds the payload of an H3FrameType frame that a
// server reads: the larger of the two client auth frames.
const MaxH3FramePayload = EarlyAuthRequestSize

// ErrVarint is returned for a QUIC variable-length integer out of range.
var ErrVarint = errors.New("varint out of range")

// maxVarint is the largest value a QUIC varint (RFC 9000 section 16) holds.
const maxVarint = 1<<62 - 1

// AppendVarint appends v as a QUIC variable-length integer. It panics for
// v over 2^62-1, which no caller here can produce.
//
// #nosec G115 -- varint encoding: each byte(v>>n) is the truncation meant, v bounded by the switch
func AppendVarint(b []byte, v uint64) []byte {
	switch {
	case v < 1<<6:
		return append(b, byte(v))
	case v < 1<<14:
		return append(b, 0x40|byte(v>>8), byte(v))
	case v < 1<<30:
		return append(b, 0x80|byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	case v <= maxVarint:
		return append(b, 0xc0|byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	panic(ErrVarint)
}

// ReadVarint reads one QUIC variable-length integer from r and returns it
// with the bytes it was read from (a caller may need to hand them on). It
// reads no byte past the integer.
func ReadVarint(r io.Reader) (uint64, []byte, error) {
	var buf [8]byte
	if _, err := io.ReadFull(r, buf[:1]); err != nil {
		return 0, nil, err
	}
	n := 1 << (buf[0] >> 6)
	if _, err := io.ReadFull(r, buf[1:n]); err != nil {
		return 0, buf[:1], noEOF(err)
	}
	v := uint64(buf[0] & 0x3f)
	for _, c := range buf[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, buf[:n], nil
}

// AppendH3Frame appends payload wrapped in an H3FrameType frame.
func AppendH3Frame(b, payload []byte) []byte {
	b = AppendVarint(b, H3FrameType)
	b = AppendVarint(b, uint64(len(payload)))
	return append(b, payload...)
}

// ParseClientAuth decodes a control stream's first frame (see
// ReadClientAuth) from exactly the bytes of one frame.
func ParseClientAuth(b []byte) (ClientAuth, error) {
	r := bytes.NewReader(b)
	a, err := ReadClientAuth(r)
	if err != nil {
		return ClientAuth{}, err
	}
	if r.Len() != 0 {
		return ClientAuth{}, ErrMalformed
	}
	return a, nil
}
