package relay

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// patience bounds every wait in these tests. It is a failure deadline, not
// a synchronisation device: every test proceeds as soon as the event it
// waits for happens.
const patience = 5 * time.Second

// tcpConn is the inner end of a loopback TCP connection given to Pipe. It
// counts Close calls; with abortable set it also implements Aborter by
// resetting the connection.
type tcpConn struct {
	*net.TCPConn
	closes atomic.Int32
}

func (c *tcpConn) Close() error {
	c.closes.Add(1)
	return c.TCPConn.Close()
}

type abortableConn struct {
	*tcpConn
	aborts atomic.Int32
}

func (c *abortableConn) Abort() {
	c.aborts.Add(1)
	_ = c.SetLinger(0)
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type accepted struct {
		c   *net.TCPConn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.AcceptTCP()
		ch <- accepted{c, err}
	}()
	dialed, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	a := <-ch
	if a.err != nil {
		dialed.Close()
		t.Fatal(a.err)
	}
	t.Cleanup(func() {
		dialed.Close()
		a.c.Close()
	})
	return dialed, a.c
}

// rig is a relay between two TCP connections:
//
//	outerA <-tcp-> innerA =Pipe= innerB <-tcp-> outerB
type rig struct {
	outerA, outerB *net.TCPConn
	innerA, innerB *tcpConn
	a, b           Conn
	abortA, abortB *abortableConn
	counters       Counters
	done           chan Result
}

func newRig(t *testing.T, abortable bool) *rig {
	t.Helper()
	outerA, ia := tcpPair(t)
	ib, outerB := tcpPair(t)
	r := &rig{
		outerA: outerA, outerB: outerB,
		innerA: &tcpConn{TCPConn: ia}, innerB: &tcpConn{TCPConn: ib},
		counters: Counters{AToB: new(atomic.Int64), BToA: new(atomic.Int64)},
		done:     make(chan Result, 1),
	}
	r.a, r.b = r.innerA, r.innerB
	if abortable {
		r.abortA, r.abortB = &abortableConn{tcpConn: r.innerA}, &abortableConn{tcpConn: r.innerB}
		r.a, r.b = r.abortA, r.abortB
	}
	deadline := time.Now().Add(patience)
	_ = outerA.SetDeadline(deadline)
	_ = outerB.SetDeadline(deadline)
	go func() { r.done <- Pipe(r.a, r.b, r.counters) }()
	return r
}

// wait returns Pipe's result, failing the test if it does not come.
func (r *rig) wait(t *testing.T) Result {
	t.Helper()
	select {
	case res := <-r.done:
		return res
	case <-time.After(patience):
		t.Fatalf("Pipe did not return within %v", patience)
		return Result{}
	}
}

// checkClosed checks that Pipe closed both inner connections.
func (r *rig) checkClosed(t *testing.T) {
	t.Helper()
	for name, c := range map[string]*tcpConn{"a": r.innerA, "b": r.innerB} {
		if c.closes.Load() == 0 {
			t.Errorf("Pipe did not close %s", name)
		}
		if _, err := c.TCPConn.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("reading %s after Pipe: %v, want net.ErrClosed", name, err)
		}
	}
}

// payload returns n deterministic pseudo-random bytes.
func payload(n int, seed uint64) []byte {
	rng := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

type transfer struct {
	sum [sha256.Size]byte
	n   int64
	err error
}

// sendAndClose writes data to c then half-closes it.
func sendAndClose(c *net.TCPConn, data []byte) error {
	if _, err := c.Write(data); err != nil {
		return err
	}
	return c.CloseWrite()
}

// receive reads c to EOF and hashes what came.
func receive(c io.Reader) transfer {
	h := sha256.New()
	n, err := io.Copy(h, c)
	var tr transfer
	h.Sum(tr.sum[:0])
	tr.n, tr.err = n, err
	return tr
}

func TestPipeBothWays(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name       string
		aToB, bToA int
		abortable  bool
	}{
		{"empty", 0, 0, false},
		{"one byte one way", 1, 0, false},
		{"one byte other way", 0, 1, false},
		{"odd sizes", LargeBufferSize + 1, 3*LargeBufferSize - 7, false},
		{"8 MiB each way", 8 * mib, 8 * mib, false},
		{"8 MiB each way, abortable conns", 8 * mib, 8 * mib, true},
		{"lopsided", 4 * mib, 5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataAB, dataBA := payload(tt.aToB, 1), payload(tt.bToA, 2)
			r := newRig(t, tt.abortable)

			var wg sync.WaitGroup
			var sendErrA, sendErrB error
			var gotB, gotA transfer
			wg.Add(4)
			go func() { defer wg.Done(); sendErrA = sendAndClose(r.outerA, dataAB) }()
			go func() { defer wg.Done(); sendErrB = sendAndClose(r.outerB, dataBA) }()
			go func() { defer wg.Done(); gotB = receive(r.outerB) }()
			go func() { defer wg.Done(); gotA = receive(r.outerA) }()
			wg.Wait()
			res := r.wait(t)

			if sendErrA != nil || sendErrB != nil {
				t.Fatalf("send: %v, %v", sendErrA, sendErrB)
			}
			if gotB.err != nil || gotA.err != nil {
				t.Fatalf("receive: %v, %v", gotB.err, gotA.err)
			}
			if gotB.n != int64(len(dataAB)) || gotB.sum != sha256.Sum256(dataAB) {
				t.Fatalf("A->B: got %d bytes with another hash, want %d", gotB.n, len(dataAB))
			}
			if gotA.n != int64(len(dataBA)) || gotA.sum != sha256.Sum256(dataBA) {
				t.Fatalf("B->A: got %d bytes with another hash, want %d", gotA.n, len(dataBA))
			}
			want := Result{AToB: int64(len(dataAB)), BToA: int64(len(dataBA))}
			if res != want {
				t.Fatalf("Result = %+v, want %+v", res, want)
			}
			if a, b := r.counters.AToB.Load(), r.counters.BToA.Load(); a != want.AToB || b != want.BToA {
				t.Fatalf("counters = %d, %d; want %d, %d", a, b, want.AToB, want.BToA)
			}
			if tt.abortable && (r.abortA.aborts.Load() != 0 || r.abortB.aborts.Load() != 0) {
				t.Fatal("a clean end aborted a connection")
			}
			r.checkClosed(t)
		})
	}
}

// TestPipeHalfClose: A sends a request and half-closes; B sees the end of
// data, and only then answers; the answer still reaches A.
func TestPipeHalfClose(t *testing.T) {
	for _, abortable := range []bool{false, true} {
		name := "plain"
		if abortable {
			name = "abortable"
		}
		t.Run(name, func(t *testing.T) {
			r := newRig(t, abortable)
			request, response := []byte("request, then FIN"), []byte("response after the FIN")

			if err := sendAndClose(r.outerA, request); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r.outerB)
			if err != nil {
				t.Fatalf("B reading to EOF: %v", err)
			}
			if !bytes.Equal(got, request) {
				t.Fatalf("B got %q, want %q", got, request)
			}
			// B->A is still open, so Pipe must still be running.
			select {
			case res := <-r.done:
				t.Fatalf("Pipe returned (%+v) while B->A was open", res)
			default:
			}
			if err := sendAndClose(r.outerB, response); err != nil {
				t.Fatalf("B writing after EOF: %v", err)
			}
			got, err = io.ReadAll(r.outerA)
			if err != nil {
				t.Fatalf("A reading to EOF: %v", err)
			}
			if !bytes.Equal(got, response) {
				t.Fatalf("A got %q, want %q", got, response)
			}
			res := r.wait(t)
			want := Result{AToB: int64(len(request)), BToA: int64(len(response))}
			if res != want {
				t.Fatalf("Result = %+v, want %+v", res, want)
			}
			r.checkClosed(t)
		})
	}
}

// TestPipeAbort resets one outer connection in the middle of an exchange.
// Pipe must return with an error and the other outer end must see its
// connection end at once: with a reset if the inner connections can abort,
// at least an end of data otherwise.
func TestPipeAbort(t *testing.T) {
	tests := []struct {
		name      string
		resetA    bool // reset outerA; otherwise outerB
		abortable bool
	}{
		{"reset A, plain", true, false},
		{"reset B, plain", false, false},
		{"reset A, abortable", true, true},
		{"reset B, abortable", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.abortable)
			victim, survivor := r.outerA, r.outerB
			if !tt.resetA {
				victim, survivor = r.outerB, r.outerA
			}
			// Some data first, to be sure the relay is running.
			if _, err := victim.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(survivor, buf); err != nil || string(buf) != "hello" {
				t.Fatalf("survivor read %q, %v", buf, err)
			}

			if err := victim.SetLinger(0); err != nil {
				t.Fatal(err)
			}
			if err := victim.Close(); err != nil {
				t.Fatal(err)
			}

			n, err := survivor.Read(buf)
			if n != 0 {
				t.Fatalf("survivor read %d unexpected bytes", n)
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("survivor saw nothing within %v", patience)
			}
			if err == nil {
				t.Fatal("survivor Read returned no error")
			}
			if tt.abortable && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("survivor err = %v, want a reset (ECONNRESET)", err)
			}

			res := r.wait(t)
			if res.Err == nil {
				t.Fatalf("Pipe returned %+v, want an error", res)
			}
			if res.AToB != 5 && res.BToA != 5 {
				t.Fatalf("Result = %+v, want the 5 bytes counted", res)
			}
			if tt.abortable && (r.abortA.aborts.Load() == 0 || r.abortB.aborts.Load() == 0) {
				t.Fatalf("aborts = %d, %d; want both aborted", r.abortA.aborts.Load(), r.abortB.aborts.Load())
			}
			r.checkClosed(t)
		})
	}
}

// TestPipePeerGone: B's outer end goes away while A keeps sending; the
// relay's writes fail, Pipe returns with an error and A's sender is stopped.
func TestPipePeerGone(t *testing.T) {
	r := newRig(t, true)
	if err := r.outerB.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	if err := r.outerB.Close(); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	var err error
	for err == nil {
		_, err = r.outerA.Write(chunk)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("A could write for %v into a dead relay", patience)
	}
	res := r.wait(t)
	if res.Err == nil {
		t.Fatalf("Pipe returned %+v, want an error", res)
	}
	r.checkClosed(t)
}

// fakeConn is an in-memory Conn: Read returns data then readErr (io.EOF if
// nil); Write appends to written until writeLimit bytes, then fails.
type fakeConn struct {
	data      []byte
	readErr   error
	writeErr  error // returned once writeLimit bytes have been written
	writeLim  int   // -1: no limit
	cwErr     error // returned by CloseWrite
	mu        sync.Mutex
	written   []byte
	cwCalls   int
	closes    int
	aborts    int
	abortable bool
}

func (f *fakeConn) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		if f.readErr != nil {
			return 0, f.readErr
		}
		return 0, io.EOF
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func (f *fakeConn) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.writeLim >= 0 && len(f.written)+len(p) > f.writeLim {
		n := f.writeLim - len(f.written)
		f.written = append(f.written, p[:n]...)
		return n, f.writeErr
	}
	f.written = append(f.written, p...)
	return len(p), nil
}

func (f *fakeConn) CloseWrite() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cwCalls++
	return f.cwErr
}

func (f *fakeConn) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closes++
	return nil
}

// abortFake adds Aborter to a fakeConn.
type abortFake struct{ *fakeConn }

func (a abortFake) Abort() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.aborts++
}

func asConn(f *fakeConn) Conn {
	if f.abortable {
		return abortFake{f}
	}
	return f
}

func TestPipeFakes(t *testing.T) {
	boom := errors.New("boom")
	wfail := errors.New("write failed")
	cwfail := errors.New("closewrite failed")
	big := payload(3*LargeBufferSize+11, 3)
	tests := []struct {
		name       string
		a, b       *fakeConn
		wantErr    error
		wantAToB   int64
		wantBToA   int64
		wantAborts bool
	}{
		{
			name:     "clean both ways",
			a:        &fakeConn{data: []byte("hello"), writeLim: -1, abortable: true},
			b:        &fakeConn{data: []byte("world!"), writeLim: -1, abortable: true},
			wantAToB: 5, wantBToA: 6,
		},
		{
			name:     "several chunks",
			a:        &fakeConn{data: big, writeLim: -1},
			b:        &fakeConn{writeLim: -1},
			wantAToB: int64(len(big)),
		},
		{
			name:     "read error on a",
			a:        &fakeConn{data: []byte("part"), readErr: boom, writeLim: -1, abortable: true},
			b:        &fakeConn{writeLim: -1, abortable: true},
			wantErr:  boom,
			wantAToB: 4, wantAborts: true,
		},
		{
			name:       "read error on b",
			a:          &fakeConn{writeLim: -1, abortable: true},
			b:          &fakeConn{readErr: boom, writeLim: -1, abortable: true},
			wantErr:    boom,
			wantAborts: true,
		},
		{
			name:     "wrapped EOF is an end of data",
			a:        &fakeConn{data: []byte("x"), readErr: wrapEOF{}, writeLim: -1},
			b:        &fakeConn{writeLim: -1},
			wantAToB: 1,
		},
		{
			name:     "short write to b",
			a:        &fakeConn{data: []byte("0123456789"), writeLim: -1, abortable: true},
			b:        &fakeConn{writeLim: 4, writeErr: wfail, abortable: true},
			wantErr:  wfail,
			wantAToB: 4, wantAborts: true,
		},
		{
			name:     "CloseWrite fails",
			a:        &fakeConn{data: []byte("abc"), writeLim: -1, abortable: true},
			b:        &fakeConn{writeLim: -1, cwErr: cwfail, abortable: true},
			wantErr:  cwfail,
			wantAToB: 3, wantAborts: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aData, bData := bytes.Clone(tt.a.data), bytes.Clone(tt.b.data)
			var ab, ba atomic.Int64
			res := Pipe(asConn(tt.a), asConn(tt.b), Counters{AToB: &ab, BToA: &ba})
			if tt.wantErr == nil && res.Err != nil || tt.wantErr != nil && !errors.Is(res.Err, tt.wantErr) {
				t.Fatalf("Err = %v, want %v", res.Err, tt.wantErr)
			}
			if res.AToB != tt.wantAToB || res.BToA != tt.wantBToA {
				t.Fatalf("Result = %d, %d; want %d, %d", res.AToB, res.BToA, tt.wantAToB, tt.wantBToA)
			}
			if ab.Load() != res.AToB || ba.Load() != res.BToA {
				t.Fatalf("counters = %d, %d; Result = %d, %d", ab.Load(), ba.Load(), res.AToB, res.BToA)
			}
			if tt.wantErr == nil {
				if !bytes.Equal(tt.b.written, aData) || !bytes.Equal(tt.a.written, bData) {
					t.Fatalf("relayed %q / %q, want %q / %q", tt.b.written, tt.a.written, aData, bData)
				}
				if tt.a.cwCalls != 1 || tt.b.cwCalls != 1 {
					t.Fatalf("CloseWrite calls = %d, %d; want 1, 1", tt.a.cwCalls, tt.b.cwCalls)
				}
			}
			for name, c := range map[string]*fakeConn{"a": tt.a, "b": tt.b} {
				if c.closes == 0 {
					t.Errorf("%s not closed", name)
				}
				if c.abortable && (c.aborts > 0) != tt.wantAborts {
					t.Errorf("%s aborted %d times, want aborted = %v", name, c.aborts, tt.wantAborts)
				}
			}
		})
	}
}

// wrapEOF is an error that wraps io.EOF, as some stream types return.
type wrapEOF struct{}

func (wrapEOF) Error() string { return "stream ended: EOF" }
func (wrapEOF) Unwrap() error { return io.EOF }

func TestPipeNilCounters(t *testing.T) {
	a := &fakeConn{data: []byte("abc"), writeLim: -1}
	b := &fakeConn{data: []byte("de"), writeLim: -1}
	res := Pipe(a, b, Counters{})
	if res != (Result{AToB: 3, BToA: 2}) {
		t.Fatalf("Result = %+v", res)
	}
}

func TestAbort(t *testing.T) {
	plain := &fakeConn{writeLim: -1}
	Abort(plain)
	if plain.closes != 1 || plain.aborts != 0 {
		t.Fatalf("plain conn: closes %d, aborts %d; want 1, 0", plain.closes, plain.aborts)
	}
	ab := &fakeConn{writeLim: -1, abortable: true}
	Abort(asConn(ab))
	if ab.closes != 1 || ab.aborts != 1 {
		t.Fatalf("abortable conn: closes %d, aborts %d; want 1, 1", ab.closes, ab.aborts)
	}
}
