package transport

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// maxReplay bounds what a stream keeps to send again if the server refuses
// 0-RTT. Past it, writes wait for the server's verdict (one round trip).
const maxReplay = 256 << 10

// earlyState is the fate of one connection's 0-RTT: pending until the
// handshake ends, then accepted or refused. Streams opened in 0-RTT wait
// on it.
type earlyState struct {
	once     sync.Once
	done     chan struct{}
	accepted bool // set before done is closed
}

func newEarlyState() *earlyState { return &earlyState{done: make(chan struct{})} }

// resolve settles the state once; later calls and a nil state do nothing.
func (e *earlyState) resolve(accepted bool) {
	if e == nil {
		return
	}
	e.once.Do(func() {
		e.accepted = accepted
		close(e.done)
	})
}

// settled reports whether the state is settled, and if so, how.
func (e *earlyState) settled() (done, accepted bool) {
	select {
	case <-e.done:
		return true, e.accepted
	default:
		return false, false
	}
}

// replayStream is a stream opened while its connection is in 0-RTT. The
// server may yet refuse 0-RTT, and with it everything the stream sent; so
// the stream keeps a copy of what it writes until the server's verdict,
// and if refused, reopens itself on the connection that follows (the same
// connection, now in 1-RTT and authenticated the full way) and sends the
// copy again. The relay above never notices.
type replayStream struct {
	d     *QUICDialer
	early *earlyState

	mu        sync.Mutex
	cur       *quic.Stream
	rec       []byte // what was written, while the verdict is pending
	recording bool
	finSent   bool
	rdl, wdl  time.Time
}

func newReplayStream(d *QUICDialer, s *quic.Stream, early *earlyState) *replayStream {
	return &replayStream{d: d, early: early, cur: s, recording: true}
}

func (s *replayStream) current() *quic.Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Write implements relay.Conn.
func (s *replayStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	for s.recording {
		done, accepted := s.early.settled()
		if done && accepted {
			s.recording, s.rec = false, nil
			break
		}
		if done || len(s.rec)+len(p) <= maxReplay {
			// Refused: the write fails with Err0RTTRejected and the
			// copy, this write included, goes to the new stream.
			s.rec = append(s.rec, p...)
			break
		}
		s.mu.Unlock()
		<-s.early.done // bounded: the dialer settles it when the handshake ends or fails
		s.mu.Lock()
	}
	st := s.cur
	s.mu.Unlock()
	n, err := st.Write(p)
	if errors.Is(err, quic.Err0RTTRejected) {
		if err := s.reopen(st); err != nil {
			return 0, err
		}
		return len(p), nil // p was in the copy, sent again by reopen
	}
	return n, err
}

// Read implements relay.Conn.
func (s *replayStream) Read(p []byte) (int, error) {
	for {
		st := s.current()
		n, err := st.Read(p)
		if !errors.Is(err, quic.Err0RTTRejected) {
			return n, err
		}
		if err := s.reopen(st); err != nil {
			return 0, err
		}
	}
}

// reopen replaces old (if it is still the current stream) with a stream on
// the connection after the refusal, sending the copy again.
func (s *replayStream) reopen(old *quic.Stream) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != old {
		return nil // the other direction did it
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.d.cfg.ConnectWait)
	defer cancel()
	st, err := s.d.open(ctx, true)
	if err != nil {
		return err
	}
	next := st.(quicStream).Stream
	if !s.rdl.IsZero() {
		_ = next.SetReadDeadline(s.rdl)
	}
	if !s.wdl.IsZero() {
		_ = next.SetWriteDeadline(s.wdl)
	}
	if len(s.rec) > 0 {
		if _, err := next.Write(s.rec); err != nil {
			quicStream{next}.Abort()
			return err
		}
	}
	if s.finSent {
		_ = next.Close()
	}
	s.d.cfg.Logger.Debug("stream sent again after 0-RTT was refused", "bytes", len(s.rec), "fin", s.finSent)
	s.cur, s.recording, s.rec = next, false, nil
	return nil
}

// CloseWrite implements relay.Conn.
func (s *replayStream) CloseWrite() error {
	s.mu.Lock()
	s.finSent = true
	st := s.cur
	s.mu.Unlock()
	if err := (quicStream{st}).CloseWrite(); err != nil && !errors.Is(err, quic.Err0RTTRejected) {
		return err
	}
	return nil
}

// Close implements relay.Conn.
func (s *replayStream) Close() error { return quicStream{s.current()}.Close() }

// Abort implements relay.Aborter.
func (s *replayStream) Abort() { quicStream{s.current()}.Abort() }

// SetReadDeadline implements Stream.
func (s *replayStream) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.rdl = t
	st := s.cur
	s.mu.Unlock()
	return st.SetReadDeadline(t)
}

// SetWriteDeadline implements Stream.
func (s *replayStream) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	s.wdl = t
	st := s.cur
	s.mu.Unlock()
	return st.SetWriteDeadline(t)
}
