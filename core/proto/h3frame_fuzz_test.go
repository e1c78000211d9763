package proto

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadVarint reads a QUIC variable-length integer from arbitrary
// bytes, as a server does with a peer's first stream. It must never
// panic; it reads exactly the integer's bytes (the length its first byte
// says), returns them as read, and a value of at most 2^62-1; it fails
// only when the bytes run out, with io.EOF before the first byte and
// io.ErrUnexpectedEOF after it; and AppendVarint writes the value back in
// as many bytes or fewer, which read back to the same value.
func FuzzReadVarint(f *testing.F) {
	f.Add([]byte{0x25})
	f.Add([]byte{0x7b, 0xbd})
	f.Add([]byte{0x9d, 0x7f, 0x3e, 0x7d})
	f.Add([]byte{0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c})
	f.Add([]byte{0x40, 0x25}) // 37 in two bytes: not minimal, still valid
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00})
	f.Add([]byte{0xc0, 0x00})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		v, raw, err := ReadVarint(r)
		used := len(b) - r.Len()
		if err != nil {
			switch {
			case len(b) == 0:
				if !errors.Is(err, io.EOF) || raw != nil {
					t.Fatalf("ReadVarint(empty) = %x, %v; want io.EOF", raw, err)
				}
			case len(b) < 1<<(b[0]>>6):
				if !errors.Is(err, io.ErrUnexpectedEOF) || !bytes.Equal(raw, b[:1]) {
					t.Fatalf("ReadVarint(%x) = %x, %v; want the first byte and io.ErrUnexpectedEOF", b, raw, err)
				}
			default:
				t.Fatalf("ReadVarint(%x) failed with enough bytes: %v", b, err)
			}
			return
		}
		n := 1 << (b[0] >> 6)
		if used != n || !bytes.Equal(raw, b[:n]) {
			t.Fatalf("ReadVarint(%x) read %d bytes, returned %x; want the first %d", b, used, raw, n)
		}
		if v > maxVarint {
			t.Fatalf("ReadVarint(%x) = %d, more than 2^62-1", b, v)
		}
		enc := AppendVarint(nil, v)
		if len(enc) > len(raw) {
			t.Fatalf("AppendVarint(%d) = %x, longer than %x", v, enc, raw)
		}
		again, raw2, err := ReadVarint(bytes.NewReader(enc))
		if err != nil || again != v || !bytes.Equal(raw2, enc) {
			t.Fatalf("ReadVarint(AppendVarint(%d) = %x) = %d, %x, %v", v, enc, again, raw2, err)
		}
	})
}

// FuzzParseClientAuth checks the QUIC control stream's first frame as it
// arrives: an auth frame (full or early) wrapped in an HTTP/3 frame of
// type H3FrameType. Wrapping arbitrary bytes and reading them back gives
// the type, the length and the bytes; ParseClientAuth never panics, and
// accepts exactly one whole frame that ReadClientAuth reads to the end,
// which re-encodes to the same bytes.
func FuzzParseClientAuth(f *testing.F) {
	var proof [ProofSize]byte
	for i := range proof {
		proof[i] = byte(i)
	}
	full := AppendAuthRequest(nil, AuthRequest{Proof: proof})
	early := AppendEarlyAuthRequest(nil, EarlyAuthRequest{UnixMilli: 1764590000000, Nonce: [NonceSize]byte{1, 2, 3}, Proof: proof})
	f.Add(full)
	f.Add(early)
	f.Add(append(bytes.Clone(full), 0))
	f.Add(early[:len(early)-1])
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		frame := AppendH3Frame(nil, payload)
		r := bytes.NewReader(frame)
		typ, _, err := ReadVarint(r)
		if err != nil || typ != H3FrameType {
			t.Fatalf("frame type %#x, %v; want %#x", typ, err, H3FrameType)
		}
		n, _, err := ReadVarint(r)
		if err != nil || n != uint64(len(payload)) || r.Len() != len(payload) || !bytes.Equal(frame[len(frame)-r.Len():], payload) {
			t.Fatalf("frame length %d, %v; %d bytes follow; want %d", n, err, r.Len(), len(payload))
		}

		ca, err := ParseClientAuth(payload)
		rr := bytes.NewReader(payload)
		rca, rerr := ReadClientAuth(rr)
		if err != nil {
			if ca != (ClientAuth{}) {
				t.Fatalf("ParseClientAuth(%x) failed (%v) with a result", payload, err)
			}
			if rerr == nil && rr.Len() == 0 {
				t.Fatalf("ParseClientAuth(%x) refused a frame ReadClientAuth reads whole: %v", payload, err)
			}
			return
		}
		if rerr != nil || rr.Len() != 0 || rca != ca {
			t.Fatalf("ParseClientAuth(%x) = %+v; ReadClientAuth = %+v, %v, %d bytes left", payload, ca, rca, rerr, rr.Len())
		}
		if len(payload) > MaxH3FramePayload {
			t.Fatalf("a %d-byte frame accepted, more than MaxH3FramePayload", len(payload))
		}
		var enc []byte
		if ca.Early {
			enc = AppendEarlyAuthRequest(nil, ca.EarlyReq)
		} else {
			enc = AppendAuthRequest(nil, ca.Request)
		}
		if !bytes.Equal(enc, payload) {
			t.Fatalf("encode(ParseClientAuth(%x)) = %x", payload, enc)
		}
	})
}
