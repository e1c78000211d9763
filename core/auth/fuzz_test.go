package auth_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/qtunnel/qtunnel/core/auth"
	"github.com/qtunnel/qtunnel/core/proto"
	"github.com/qtunnel/qtunnel/core/secret"
)

// fuzzExporter is a fixed exporter value: bytes 0, 1, ..., 31.
func fuzzExporter() []byte {
	e := make([]byte, 32)
	for i := range e {
		e[i] = byte(i)
	}
	return e
}

// FuzzServer feeds arbitrary bytes to auth.Server as the client's frame. It
// must never panic, and must succeed exactly when the input starts with the
// right frame for one of its secrets, answering with that secret's proof.
func FuzzServer(f *testing.F) {
	secrets := []secret.Secret{mustSecret(f, "fuzz-secret-one"), mustSecret(f, "fuzz-secret-two")}
	exp := fuzzExporter()
	var frames [][]byte
	for _, s := range secrets {
		frames = append(frames, proto.AppendAuthRequest(nil, proto.AuthRequest{Proof: auth.ClientProof(s, exp)}))
	}
	f.Add(frames[0])
	f.Add(append(bytes.Clone(frames[1]), "payload"...))
	f.Add(proto.AppendAuthRequest(nil, proto.AuthRequest{Proof: auth.ServerProof(secrets[0], exp)}))
	f.Add(frames[0][:proto.AuthRequestSize-1])
	f.Add([]byte{})

	rejection := proto.AppendAuthResponse(nil, proto.AuthResponse{Status: proto.AuthRejected})
	f.Fuzz(func(t *testing.T, in []byte) {
		conn := &rw{Reader: bytes.NewReader(in)}
		i, err := auth.Server(conn, secrets, exp)

		want := -1
		for j, fr := range frames {
			if bytes.HasPrefix(in, fr) {
				want = j
				break
			}
		}
		if want < 0 {
			if err == nil || i != -1 {
				t.Fatalf("Server accepted %x: index %d, err %v", in, i, err)
			}
			switch {
			case len(in) < proto.AuthRequestSize || in[0] != proto.Version:
				// Not a frame at all: no answer.
				if conn.out.Len() != 0 {
					t.Fatalf("answered %x to %x", conn.out.Bytes(), in)
				}
				if errors.Is(err, auth.ErrBadProof) {
					t.Fatalf("unreadable frame %x reported as a bad proof", in)
				}
			default:
				if !errors.Is(err, auth.ErrBadProof) {
					t.Fatalf("wrong proof %x: err %v, want ErrBadProof", in, err)
				}
				if !bytes.Equal(conn.out.Bytes(), rejection) {
					t.Fatalf("answer to a wrong proof = %x, want %x", conn.out.Bytes(), rejection)
				}
			}
			return
		}
		if err != nil || i != want {
			t.Fatalf("Server = %d, %v; want %d, nil", i, err, want)
		}
		resp, err := proto.ParseAuthResponse(conn.out.Bytes())
		if err != nil {
			t.Fatalf("answer %x: %v", conn.out.Bytes(), err)
		}
		if resp.Status != proto.AuthOK || resp.Proof != auth.ServerProof(secrets[want], exp) {
			t.Fatalf("answer = %+v, want AuthOK with the server proof for secret %d", resp, want)
		}
	})
}
