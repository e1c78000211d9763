// Package relay copies bytes both ways between two connections, as TCP
// would: an end of data (FIN) in one direction is passed on as an end of
// data on the other side while the other direction keeps flowing, and a
// failure (a reset, a broken stream) on either side aborts both.
//
// Buffers come from a shared pool, and the copy loop does no per-byte work:
// one read, one write and one atomic add per chunk.
package relay

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// Copy buffers come in two sizes. A relay starts with a small one, so that
// thousands of idle connections cost little, and moves to a large one when a
// read fills the small one: in bulk transfers large reads and writes halve
// the system calls (measured in docs/performance.md). When reads shrink
// again, the large buffer goes back to the pool.
const (
	SmallBufferSize = 16 << 10
	LargeBufferSize = 128 << 10
)

// Conn is one end of a relay.
type Conn interface {
	io.Reader
	io.Writer
	// CloseWrite tells the peer that no more data will come (TCP FIN, QUIC
	// stream FIN, TLS close_notify), keeping the read side open.
	CloseWrite() error
	// Close releases the connection.
	Close() error
}

// Aborter is implemented by connections that can tell their peer that the
// exchange failed (a TCP RST, a QUIC stream reset) rather than ended.
type Aborter interface {
	Abort()
}

// Abort tells c's peer that the exchange failed, if c can, and closes c.
func Abort(c Conn) {
	if a, ok := c.(Aborter); ok {
		a.Abort()
	}
	_ = c.Close()
}

// Result reports what a Pipe moved and how it ended.
type Result struct {
	AToB, BToA int64
	// Err is the first error in either direction, nil if both ended with a
	// clean end of data.
	Err error
}

// Counters, when set, are advanced as bytes move, for live statistics.
type Counters struct {
	AToB, BToA *atomic.Int64
}

var (
	smallPool = sync.Pool{New: func() any { b := make([]byte, SmallBufferSize); return &b }}
	largePool = sync.Pool{New: func() any { b := make([]byte, LargeBufferSize); return &b }}
)

// Pipe relays between a and b until both directions have ended, then closes
// both. If either direction fails, both connections are aborted at once.
func Pipe(a, b Conn, counters Counters) Result {
	var (
		res      Result
		failOnce sync.Once
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		failOnce.Do(func() {
			res.Err = err
			Abort(a)
			Abort(b)
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, err := copyHalf(b, a, counters.AToB)
		res.AToB = n
		if err != nil {
			fail(err)
		}
	}()
	n, err := copyHalf(a, b, counters.BToA)
	res.BToA = n
	if err != nil {
		fail(err)
	}
	wg.Wait()
	_ = a.Close()
	_ = b.Close()
	return res
}

// copyHalf copies src to dst until src ends, then half-closes dst.
func copyHalf(dst, src Conn, counter *atomic.Int64) (int64, error) {
	small := smallPool.Get().(*[]byte)
	defer smallPool.Put(small)
	var large *[]byte
	defer func() {
		if large != nil {
			largePool.Put(large)
		}
	}()
	buf := *small
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if counter != nil {
				counter.Add(int64(w))
			}
			if werr != nil {
				return total, werr
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return total, dst.CloseWrite()
			}
			return total, rerr
		}
		switch {
		case large == nil && n == len(buf):
			large = largePool.Get().(*[]byte)
			buf = *large
		case large != nil && n < SmallBufferSize/2:
			largePool.Put(large)
			large, buf = nil, *small
		}
	}
}
