package transport

import (
	"bytes"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

// webSite serves TLS/TCP connections that are not clients' as an HTTPS
// site: HTTP/1.1, or HTTP/2 for a peer that negotiated h2 with ALPN. Each
// connection comes with the bytes already read from it.
type webSite struct {
	srv  *http.Server
	ln   *connListener
	once sync.Once
	done chan struct{} // closed when srv.Serve has returned
}

func newWebSite(h http.Handler, addr net.Addr) *webSite {
	var p http.Protocols
	p.SetHTTP1(true)
	// The connection reaches net/http unwrapped from TLS (with bytes put
	// back), so HTTP/2 is taken by its preface, as TLS's ALPN promised.
	p.SetUnencryptedHTTP2(true)
	return &webSite{
		srv: &http.Server{
			Handler:           h,
			Protocols:         &p,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       60 * time.Second,
			MaxHeaderBytes:    webMaxHeaderBytes,
			// A visitor's malformed request is not the operator's problem.
			ErrorLog: log.New(io.Discard, "", 0),
		},
		ln:   &connListener{conns: make(chan net.Conn), closed: make(chan struct{}), addr: addr},
		done: make(chan struct{}),
	}
}

// start runs the HTTP server; close stops it.
func (w *webSite) start() {
	go func() {
		defer close(w.done)
		_ = w.srv.Serve(w.ln)
	}()
}

// close stops the site and closes the connections it serves.
func (w *webSite) close() {
	w.once.Do(func() {
		w.ln.close()
		_ = w.srv.Close()
	})
}

// serve hands conn, whose first bytes were read, to the site and returns
// once the site has closed it (or the site is closed).
func (w *webSite) serve(conn net.Conn, read []byte) {
	pc := &prefixConn{Conn: conn, r: io.MultiReader(bytes.NewReader(read), conn), closed: make(chan struct{})}
	select {
	case w.ln.conns <- pc:
	case <-w.ln.closed:
		_ = conn.Close()
		return
	}
	select {
	case <-pc.closed:
	case <-w.ln.closed:
		<-w.done // srv.Close has closed every connection
		_ = conn.Close()
	}
}

// prefixConn reads the bytes already read from Conn before the rest, and
// says when it is closed.
type prefixConn struct {
	net.Conn
	r      io.Reader
	once   sync.Once
	closed chan struct{}
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *prefixConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.closed) })
	return err
}

// connListener is a net.Listener fed connections by hand.
type connListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	addr   net.Addr
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) close() { l.once.Do(func() { close(l.closed) }) }

func (l *connListener) Close() error { l.close(); return nil }

func (l *connListener) Addr() net.Addr { return l.addr }
