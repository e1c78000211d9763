package proto

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func FuzzParseStreamRequest(f *testing.F) {
	f.Add([]byte{Version, byte(CmdConnect), 0})
	f.Add([]byte("\x01\x01\x02db"))
	f.Add([]byte("\x01\x01\x02dbpayload"))
	f.Add([]byte("\x01\x01\x05a\nb"))
	f.Add([]byte("\x02\x01\x00"))
	f.Add([]byte("\x01\x01\xff"))
	f.Add([]byte("\x01\x02\x00\x07"))
	f.Add([]byte("\x01\x02\x02db"))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, n, err := ParseStreamRequest(b)
		if err != nil {
			if req != (StreamRequest{}) || n != 0 {
				t.Fatalf("error %v with non-zero result %+v, %d", err, req, n)
			}
		} else {
			if n < 3 || n > len(b) || n > MaxFrameSize {
				t.Fatalf("used %d bytes of %d", n, len(b))
			}
			enc, err := AppendStreamRequest(nil, req)
			if err != nil {
				t.Fatalf("re-encoding %+v: %v", req, err)
			}
			if !bytes.Equal(enc, b[:n]) {
				t.Fatalf("encode(parse(b)) = %x, want b[:n] = %x", enc, b[:n])
			}
			again, m, err := ParseStreamRequest(enc)
			if err != nil || again != req || m != len(enc) {
				t.Fatalf("re-parse = %+v, %d, %v; want %+v, %d", again, m, err, req, len(enc))
			}
		}

		// The reader must agree with the parser, and read exactly the frame.
		r := bytes.NewReader(b)
		rreq, rerr := ReadStreamRequest(r)
		switch {
		case err == nil:
			if rerr != nil || rreq != req {
				t.Fatalf("ReadStreamRequest = %+v, %v; ParseStreamRequest = %+v, nil", rreq, rerr, req)
			}
			if used := len(b) - r.Len(); used != n {
				t.Fatalf("ReadStreamRequest consumed %d bytes, ParseStreamRequest used %d", used, n)
			}
		case errors.Is(err, io.ErrUnexpectedEOF):
			// The parser may stop at the header; the reader must at least
			// fail. With no bytes at all the reader says io.EOF.
			if rerr == nil {
				t.Fatalf("ReadStreamRequest succeeded (%+v) where ParseStreamRequest said %v", rreq, err)
			}
		default:
			if rerr == nil {
				t.Fatalf("ReadStreamRequest succeeded (%+v) where ParseStreamRequest said %v", rreq, err)
			}
			if !errors.Is(rerr, ErrVersion) && !errors.Is(rerr, ErrMalformed) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
				t.Fatalf("ReadStreamRequest err = %v, ParseStreamRequest err = %v", rerr, err)
			}
		}
	})
}

func FuzzParseStreamResponse(f *testing.F) {
	f.Add([]byte{Version, byte(StatusOK), 0})
	f.Add([]byte("\x01\x02\x12connection refused"))
	f.Add([]byte("\x01\xc8\x03newtail"))
	f.Add([]byte("\x01\x00\x02\r\n"))
	f.Add([]byte("\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, n, err := ParseStreamResponse(b)
		if err != nil {
			if resp != (StreamResponse{}) || n != 0 {
				t.Fatalf("error %v with non-zero result %+v, %d", err, resp, n)
			}
		} else {
			if n < 3 || n > len(b) || n > MaxFrameSize {
				t.Fatalf("used %d bytes of %d", n, len(b))
			}
			if resp.Status > maxKnownStreamStatus {
				t.Fatalf("unknown status %d passed through", resp.Status)
			}
			enc := AppendStreamResponse(nil, resp)
			again, m, err := ParseStreamResponse(enc)
			if err != nil || again != resp || m != len(enc) {
				t.Fatalf("re-parse = %+v, %d, %v; want %+v, %d", again, m, err, resp, len(enc))
			}
			// Only the status byte may differ (an unknown one reads as
			// StatusBadRequest); the rest is the same bytes.
			if len(enc) != n || !bytes.Equal(enc[2:], b[2:n]) || enc[0] != b[0] {
				t.Fatalf("encode(parse(b)) = %x, b[:n] = %x", enc, b[:n])
			}
		}

		r := bytes.NewReader(b)
		rresp, rerr := ReadStreamResponse(r)
		if err == nil {
			if rerr != nil || rresp != resp {
				t.Fatalf("ReadStreamResponse = %+v, %v; ParseStreamResponse = %+v, nil", rresp, rerr, resp)
			}
			if used := len(b) - r.Len(); used != n {
				t.Fatalf("ReadStreamResponse consumed %d bytes, ParseStreamResponse used %d", used, n)
			}
		} else if rerr == nil {
			t.Fatalf("ReadStreamResponse succeeded (%+v) where ParseStreamResponse said %v", rresp, err)
		}
	})
}

func FuzzParseAuthRequest(f *testing.F) {
	f.Add(AppendAuthRequest(nil, AuthRequest{}))
	f.Add(AppendAuthRequest(nil, AuthRequest{Proof: proofOf(1)}))
	f.Add([]byte{Version})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ParseAuthRequest(b)
		if err != nil {
			if req != (AuthRequest{}) {
				t.Fatalf("error %v with non-zero result %+v", err, req)
			}
			if len(b) == AuthRequestSize && b[0] == Version {
				t.Fatalf("refused a well-formed frame %x: %v", b, err)
			}
		} else {
			enc := AppendAuthRequest(nil, req)
			if !bytes.Equal(enc, b) {
				t.Fatalf("encode(parse(b)) = %x, want %x", enc, b)
			}
			again, err := ParseAuthRequest(enc)
			if err != nil || again != req {
				t.Fatalf("re-parse = %+v, %v; want %+v", again, err, req)
			}
		}
		// The reader reads AuthRequestSize bytes whatever follows them.
		r := bytes.NewReader(b)
		rreq, rerr := ReadAuthRequest(r)
		if len(b) >= AuthRequestSize {
			wreq, werr := ParseAuthRequest(b[:AuthRequestSize])
			if (rerr == nil) != (werr == nil) || rreq != wreq {
				t.Fatalf("ReadAuthRequest = %+v, %v; ParseAuthRequest(b[:%d]) = %+v, %v", rreq, rerr, AuthRequestSize, wreq, werr)
			}
			if r.Len() != len(b)-AuthRequestSize {
				t.Fatalf("ReadAuthRequest left %d bytes, want %d", r.Len(), len(b)-AuthRequestSize)
			}
		} else if rerr == nil {
			t.Fatalf("ReadAuthRequest succeeded on %d bytes", len(b))
		}
	})
}

func FuzzParseAuthResponse(f *testing.F) {
	f.Add(AppendAuthResponse(nil, AuthResponse{Status: AuthOK, Proof: proofOf(1)}))
	f.Add(AppendAuthResponse(nil, AuthResponse{Status: AuthRejected}))
	rejectedWithProof := AppendAuthResponse(nil, AuthResponse{Status: AuthOK, Proof: proofOf(1)})
	rejectedWithProof[1] = byte(AuthRejected)
	f.Add(rejectedWithProof)
	f.Add([]byte{Version, 2})
	f.Add(AppendAuthResponse(nil, AuthResponse{Status: AuthRetry}))
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := ParseAuthResponse(b)
		if err != nil {
			if resp != (AuthResponse{}) {
				t.Fatalf("error %v with non-zero result %+v", err, resp)
			}
		} else {
			if resp.Status != AuthOK && resp.Status != AuthRejected && resp.Status != AuthRetry {
				t.Fatalf("status %d accepted", resp.Status)
			}
			enc := AppendAuthResponse(nil, resp)
			again, err := ParseAuthResponse(enc)
			if err != nil {
				t.Fatalf("re-parse of %x: %v", enc, err)
			}
			want := resp
			if want.Status != AuthOK {
				want.Proof = [ProofSize]byte{} // a rejection is sent without proof
			}
			if again != want {
				t.Fatalf("re-parse = %+v, want %+v", again, want)
			}
			if resp.Status == AuthOK && !bytes.Equal(enc, b) {
				t.Fatalf("encode(parse(b)) = %x, want %x", enc, b)
			}
		}
		r := bytes.NewReader(b)
		rresp, rerr := ReadAuthResponse(r)
		if len(b) >= AuthResponseSize {
			wresp, werr := ParseAuthResponse(b[:AuthResponseSize])
			if (rerr == nil) != (werr == nil) || rresp != wresp {
				t.Fatalf("ReadAuthResponse = %+v, %v; ParseAuthResponse(b[:%d]) = %+v, %v", rresp, rerr, AuthResponseSize, wresp, werr)
			}
			if r.Len() != len(b)-AuthResponseSize {
				t.Fatalf("ReadAuthResponse left %d bytes, want %d", r.Len(), len(b)-AuthResponseSize)
			}
		} else if rerr == nil {
			t.Fatalf("ReadAuthResponse succeeded on %d bytes", len(b))
		}
	})
}

// FuzzReadClientAuth checks the control stream's first frame, whichever
// request it is: a frame is parsed only if well formed, re-encodes to the
// bytes read, and the reader consumes exactly its frame.
func FuzzReadClientAuth(f *testing.F) {
	f.Add(AppendAuthRequest(nil, AuthRequest{Proof: proofOf(1)}))
	f.Add(AppendEarlyAuthRequest(nil, EarlyAuthRequest{UnixMilli: 1764590000000, Nonce: [NonceSize]byte{1, 2}, Proof: proofOf(2)}))
	f.Add([]byte{EarlyAuthMarker})
	f.Add([]byte{EarlyAuthMarker, 0, 0})
	f.Add([]byte{0x7f})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		ca, err := ReadClientAuth(r)
		if err != nil {
			if ca != (ClientAuth{}) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v with non-zero result %+v", err, ca)
			}
			return
		}
		used := len(b) - r.Len()
		var enc []byte
		if ca.Early {
			enc = AppendEarlyAuthRequest(nil, ca.EarlyReq)
			if ca.Request != (AuthRequest{}) {
				t.Fatalf("early frame with a full request set: %+v", ca)
			}
		} else {
			enc = AppendAuthRequest(nil, ca.Request)
			if ca.EarlyReq != (EarlyAuthRequest{}) {
				t.Fatalf("full frame with an early request set: %+v", ca)
			}
		}
		if !bytes.Equal(enc, b[:used]) {
			t.Fatalf("encode(read(b)) = %x, want the %d bytes read %x", enc, used, b[:used])
		}
		if ca.Early {
			again, err := ParseEarlyAuthRequest(enc)
			if err != nil || again != ca.EarlyReq {
				t.Fatalf("ParseEarlyAuthRequest(%x) = %+v, %v; want %+v", enc, again, err, ca.EarlyReq)
			}
		}
	})
}
