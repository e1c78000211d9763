// Package metrics exposes a running qtunnel process's counters to
// Prometheus. Every scrape takes one control.Status snapshot and turns it
// into constant metrics, so /metrics and `qtunnel status -json` always
// agree: they read the same counters, and nothing here keeps a second copy
// that could drift.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/qtunnel/qtunnel/control"
)

// Path is where Serve mounts Handler.
const Path = "/metrics"

// Timeouts of the HTTP server Serve runs. A scrape is small and local, so
// these only guard against clients that hold connections open.
const (
	readHeaderTimeout = 5 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	shutdownTimeout   = 5 * time.Second
)

// Handler returns an http.Handler that serves, at whatever path it is
// mounted, the metrics of the process whose snapshot status returns, in
// the Prometheus exposition formats. It also serves the Go runtime and
// process collectors. It uses a registry of its own, never the global one,
// so that several handlers (tests, several tunnels in one process) do not
// collide. status must be safe to call concurrently.
func Handler(status func() control.Status) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newCollector(status),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// One bad sample (say a label that is not UTF-8) should cost that
		// sample, not the whole scrape.
		ErrorHandling: promhttp.ContinueOnError,
		// Prometheus scrapes one at a time; more than a few at once is a
		// misconfiguration or abuse, turned away rather than piled up.
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

// Listen opens the TCP listener Serve will use. It is separate from Serve
// so that a bad or busy address is reported when the process starts, not
// later from a goroutine, and so that tests can listen on port 0 and learn
// the address.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves Handler at Path on ln until ctx is done, then shuts the
// server down (waiting briefly for scrapes in progress) and returns nil.
// It closes ln. Any other failure of the server is returned.
func Serve(ctx context.Context, ln net.Listener, status func() control.Status) error {
	mux := http.NewServeMux()
	mux.Handle(Path, Handler(status))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		// A person who opens the bare address in a browser learns where to look.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "qtunnel metrics are at %s\n", Path)
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
	}

	served := make(chan struct{})
	shut := make(chan error, 1)
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
			defer cancel()
			err := srv.Shutdown(sctx)
			if err != nil {
				// Scrapes still running after the grace period are cut off.
				err = errors.Join(err, srv.Close())
			}
			shut <- err
		case <-served:
			shut <- nil
		}
	}()

	err := srv.Serve(ln)
	close(served)
	shutErr := <-shut
	if errors.Is(err, http.ErrServerClosed) {
		if shutErr != nil && !errors.Is(shutErr, context.DeadlineExceeded) {
			return fmt.Errorf("metrics: shut down: %w", shutErr)
		}
		return nil
	}
	return fmt.Errorf("metrics: serve on %s: %w", ln.Addr(), err)
}
