package transport

import (
	"bytes"
	"errors"
	"testing"

	"github.com/qtunnel/qtunnel/core/proto"
)

func TestReadFramedClientAuth(t *testing.T) {
	full := proto.AppendAuthRequest(nil, proto.AuthRequest{Proof: [proto.ProofSize]byte{1, 2, 3}})
	early := proto.AppendEarlyAuthRequest(nil, proto.EarlyAuthRequest{UnixMilli: 42})
	huge := proto.AppendVarint(proto.AppendVarint(nil, proto.H3FrameType), 1<<20)
	headers := append(proto.AppendVarint(nil, 1), 5, 'h', 'e', 'l', 'l', 'o') // an HTTP/3 HEADERS frame
	tests := []struct {
		name      string
		in        []byte
		wantErr   error // nil: a proof; errNotFramed: someone else's stream
		wantEarly bool
		wantRead  int // bytes the function must report having read
	}{
		{"full proof", proto.AppendH3Frame(nil, full), nil, false, len(proto.AppendH3Frame(nil, full))},
		{"early proof", proto.AppendH3Frame(nil, early), nil, true, len(proto.AppendH3Frame(nil, early))},
		{"HTTP/3 request", headers, errNotFramed, false, 1},
		{"unframed proof", full, errNotFramed, false, 1},
		{"huge frame", append(huge, 1, 2, 3), errNotFramed, false, len(huge)},
		{"bad payload", proto.AppendH3Frame(nil, []byte{9, 9, 9}), proto.ErrVersion, false, len(proto.AppendH3Frame(nil, []byte{9, 9, 9}))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, read, err := readFramedClientAuth(bytes.NewReader(tt.in))
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if a.Early != tt.wantEarly {
				t.Errorf("early %v, want %v", a.Early, tt.wantEarly)
			}
			if len(read) != tt.wantRead || !bytes.Equal(read, tt.in[:len(read)]) {
				t.Errorf("read %x, want the first %d bytes of %x", read, tt.wantRead, tt.in)
			}
		})
	}
}

// FuzzReadFramedClientAuth: whatever a peer sends first, the server reads
// no more than one frame's worth, and what it says it read is exactly the
// start of the stream (which an HTTP/3 server then sees).
func FuzzReadFramedClientAuth(f *testing.F) {
	f.Add(proto.AppendH3Frame(nil, proto.AppendAuthRequest(nil, proto.AuthRequest{})))
	f.Add(proto.AppendH3Frame(nil, proto.AppendEarlyAuthRequest(nil, proto.EarlyAuthRequest{})))
	f.Add([]byte{0x01, 0x05, 0, 0, 0, 0, 0})
	f.Add(proto.AppendVarint(proto.AppendVarint(nil, proto.H3FrameType), 1<<40))
	f.Add([]byte{0xc0})
	f.Fuzz(func(t *testing.T, in []byte) {
		a, read, err := readFramedClientAuth(bytes.NewReader(in))
		if !bytes.HasPrefix(in, read) {
			t.Fatalf("reported %x read, not the start of %x", read, in)
		}
		if max := 8 + 8 + proto.MaxH3FramePayload; len(read) > max {
			t.Fatalf("read %d bytes, more than one frame (%d)", len(read), max)
		}
		if err == nil {
			var payload []byte
			if a.Early {
				payload = proto.AppendEarlyAuthRequest(nil, a.EarlyReq)
			} else {
				payload = proto.AppendAuthRequest(nil, a.Request)
			}
			if got := proto.AppendH3Frame(nil, payload); len(got) > len(read) {
				t.Fatalf("decoded %x from %x read", got, read)
			}
		}
	})
}
