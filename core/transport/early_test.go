package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qtunnel/qtunnel/core/auth"
	"github.com/qtunnel/qtunnel/core/proto"
	"github.com/qtunnel/qtunnel/core/secret"
	"github.com/qtunnel/qtunnel/internal/testutil"
)

// TestServerEarlyProofPaths drives a QUICServer with a raw QUIC client
// that sends an EarlyAuthRequest over a connection that is NOT in 0-RTT (so
// the server must not take it at once):
//   - a right early proof gets AuthRetry, then a full proof gets in;
//   - a wrong early proof is refused and the connection closed, and no
//     stream is ever handed to the handler.
func TestServerEarlyProofPaths(t *testing.T) {
	crt := testutil.Certificate(t, "localhost")
	sec, err := secret.New([]byte("a secret for the early proof tests, long enough"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ListenQUIC(ServerConfig{Listen: "127.0.0.1:0", Certificate: crt, Secrets: []secret.Secret{sec}, AuthTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	handled := make(chan struct{}, 4)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(ctx, func(_ context.Context, s Stream, _ Peer) {
			handled <- struct{}{}
			s.Abort()
		})
	}()
	defer func() {
		cancel()
		<-served
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer dcancel()
		if err := srv.Drain(dctx); err != nil {
			t.Error(err)
		}
	}()

	dial := func(t *testing.T) (*quic.Conn, *quic.Stream) {
		t.Helper()
		tc := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{proto.ALPNQUIC}, MinVersion: tls.VersionTLS13}
		c, err := quic.DialAddr(context.Background(), srv.Addr().String(), tc, &quic.Config{})
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.OpenStreamSync(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		_ = st.SetDeadline(time.Now().Add(5 * time.Second))
		return c, st
	}

	t.Run("right early proof outside 0-RTT: retry, then full proof", func(t *testing.T) {
		c, ctrl := dial(t)
		defer c.CloseWithError(0, "")
		req, err := auth.NewEarlyRequest(sec, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ctrl.Write(proto.AppendH3Frame(nil, proto.AppendEarlyAuthRequest(nil, req))); err != nil {
			t.Fatal(err)
		}
		ekm, err := auth.Exporter(c.ConnectionState().TLS)
		if err != nil {
			t.Fatal(err)
		}
		if err := auth.CheckServerAnswer(ctrl, sec, ekm); !errors.Is(err, auth.ErrRetry) {
			t.Fatalf("answer to an early proof outside 0-RTT: %v, want ErrRetry", err)
		}
		if err := auth.Client(ctrl, sec, ekm); err != nil {
			t.Fatalf("full proof after the retry: %v", err)
		}
		st, err := c.OpenStreamSync(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = st.Write([]byte{1})
		select {
		case <-handled:
		case <-time.After(5 * time.Second):
			t.Fatal("stream not handed to the handler after a full proof")
		}
	})

	t.Run("wrong early proof: refused, nothing served", func(t *testing.T) {
		c, ctrl := dial(t)
		defer c.CloseWithError(0, "")
		other, _ := secret.New([]byte("not the server's secret, but long enough too"))
		req, _ := auth.NewEarlyRequest(other, time.Now())
		if _, err := ctrl.Write(proto.AppendH3Frame(nil, proto.AppendEarlyAuthRequest(nil, req))); err != nil {
			t.Fatal(err)
		}
		st, err := c.OpenStreamSync(context.Background())
		if err == nil {
			_, _ = st.Write([]byte{1})
		}
		ekm, _ := auth.Exporter(c.ConnectionState().TLS)
		if err := auth.CheckServerAnswer(ctrl, sec, ekm); !errors.Is(err, auth.ErrRejected) {
			var ae *quic.ApplicationError
			if !errors.As(err, &ae) || uint64(ae.ErrorCode) != proto.CodeAuthFailed {
				t.Fatalf("answer to a wrong early proof: %v, want a rejection", err)
			}
		}
		select {
		case <-c.Context().Done():
		case <-time.After(5 * time.Second):
			t.Fatal("server kept the connection of a wrong early proof")
		}
		select {
		case <-handled:
			t.Fatal("a stream was served for a wrong early proof")
		case <-time.After(100 * time.Millisecond):
		}
	})
}
