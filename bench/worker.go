package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"sync"
	"time"
)

// The worker subcommands run inside the lab's namespaces (as their own
// processes, like every program measured): a backend on the server side and
// load generators on the client side. Load generators print one JSON object.
//
// Backend protocol: the first byte of a connection says what it wants.
//
//	'R' + 63 bytes      request/response: a 64-byte reply, then close
//	'D' + uint64 size   download: size bytes, then close
//	'H'                 hold: echo one byte, then stay open until the client closes
const (
	modeRR       = 'R'
	modeDownload = 'D'
	modeHold     = 'H'
	requestSize  = 64
)

func worker(args []string) error {
	if len(args) == 0 {
		return errors.New("worker: want backend, rr or conns")
	}
	fs := flag.NewFlagSet("worker "+args[0], flag.ContinueOnError)
	addr := fs.String("addr", "", "address to listen on (backend) or connect to")
	n := fs.Int("n", 1, "connections")
	size := fs.Int64("size", 1<<20, "bytes each connection downloads (conns)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "backend":
		return serveBackend(*addr)
	case "rr":
		return emit(requestResponse(*addr, *n, *timeout))
	case "conns":
		return emit(parallelDownloads(*addr, *n, *size, *timeout))
	case "hold":
		return holdConnections(*addr, *n)
	}
	return fmt.Errorf("worker: unknown mode %q", args[0])
}

func emit(v any, err error) error {
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(v)
}

func serveBackend(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	chunk := make([]byte, 256<<10)
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(15 * time.Minute))
			var hdr [requestSize]byte
			if _, err := io.ReadFull(c, hdr[:1]); err != nil {
				return
			}
			switch hdr[0] {
			case modeRR:
				if _, err := io.ReadFull(c, hdr[1:]); err != nil {
					return
				}
				_, _ = c.Write(hdr[:])
			case modeHold:
				_ = c.SetDeadline(time.Time{})
				_, _ = c.Write(hdr[:1])
				_, _ = io.Copy(io.Discard, c)
			case modeDownload:
				if _, err := io.ReadFull(c, hdr[1:9]); err != nil {
					return
				}
				n := binary.BigEndian.Uint64(hdr[1:9])
				if n > math.MaxInt64 {
					return // no such download; the client sees the connection close
				}
				for left := int64(n); left > 0; {
					k := min(left, int64(len(chunk)))
					if _, err := c.Write(chunk[:k]); err != nil {
						return
					}
					left -= k
				}
			}
		}()
	}
}

// Latencies is what rr reports (microseconds).
type Latencies struct {
	N        int     `json:"n"`
	MedianUS float64 `json:"median_us"`
	P99US    float64 `json:"p99_us"`
	MinUS    float64 `json:"min_us"`
	Errors   int     `json:"errors"`
}

// requestResponse makes n fresh connections one after another, each sending
// a 64-byte request and reading the 64-byte reply, timing connect to reply.
func requestResponse(addr string, n int, timeout time.Duration) (Latencies, error) {
	var lat []time.Duration
	errs := 0
	req := make([]byte, requestSize)
	req[0] = modeRR
	reply := make([]byte, requestSize)
	for range n {
		start := time.Now()
		c, err := net.DialTimeout("tcp", addr, timeout) // #nosec G704 -- the address of the benchmark's own tunnel or backend
		if err != nil {
			errs++
			continue
		}
		_ = c.SetDeadline(time.Now().Add(timeout))
		_, err = c.Write(req)
		if err == nil {
			_, err = io.ReadFull(c, reply)
		}
		_ = c.Close()
		if err != nil {
			errs++
			continue
		}
		lat = append(lat, time.Since(start))
	}
	if len(lat) == 0 {
		return Latencies{}, fmt.Errorf("all %d requests failed", n)
	}
	slices.Sort(lat)
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	return Latencies{N: len(lat), MedianUS: us(lat[len(lat)/2]), P99US: us(lat[(len(lat)*99)/100]), MinUS: us(lat[0]), Errors: errs}, nil
}

// Completion is what conns reports (seconds).
type Completion struct {
	N      int     `json:"n"`
	TotalS float64 `json:"total_s"`
	P50S   float64 `json:"p50_s"`
	P99S   float64 `json:"p99_s"`
	MaxS   float64 `json:"max_s"`
	Bytes  int64   `json:"bytes"`
	Errors int     `json:"errors"`
}

// parallelDownloads opens n connections at once, each downloading size
// bytes, and reports per-connection and overall completion times.
func parallelDownloads(addr string, n int, size int64, timeout time.Duration) (Completion, error) {
	start := time.Now()
	var (
		mu    sync.Mutex
		times []time.Duration
		bytes int64
		errs  int
		wg    sync.WaitGroup
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := download(addr, size, timeout)
			mu.Lock()
			defer mu.Unlock()
			bytes += got
			if err != nil || got != size {
				errs++
				return
			}
			times = append(times, time.Since(start))
		}()
	}
	wg.Wait()
	if len(times) == 0 {
		return Completion{}, fmt.Errorf("all %d downloads failed", n)
	}
	slices.Sort(times)
	s := func(d time.Duration) float64 { return d.Seconds() }
	return Completion{
		N: len(times), TotalS: s(time.Since(start)), P50S: s(times[len(times)/2]),
		P99S: s(times[(len(times)*99)/100]), MaxS: s(times[len(times)-1]), Bytes: bytes, Errors: errs,
	}, nil
}

func download(addr string, size int64, timeout time.Duration) (int64, error) {
	c, err := net.DialTimeout("tcp", addr, timeout) // #nosec G704 -- the address of the benchmark's own tunnel or backend
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if size < 0 {
		return 0, fmt.Errorf("download of %d bytes", size)
	}
	var hdr [9]byte
	hdr[0] = modeDownload
	binary.BigEndian.PutUint64(hdr[1:], uint64(size))
	if _, err := c.Write(hdr[:]); err != nil {
		return 0, err
	}
	return io.Copy(io.Discard, c)
}

// holdConnections opens n connections that each reach the backend (it
// answers one byte), prints "held", and keeps them open until stdin closes.
func holdConnections(addr string, n int) error {
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second) // #nosec G704 -- the address of the benchmark's own tunnel or backend
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		conns = append(conns, c)
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		var b [1]byte
		if _, err := c.Write([]byte{modeHold}); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
	}
	fmt.Println("held")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}
