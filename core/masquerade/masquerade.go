// Package masquerade is what a QTunnel server shows to anyone who does not
// prove the secret: an ordinary web site. Scanners and censors that probe
// the port with HTTP/3 or HTTPS get a web page, the same answer as from
// the site it imitates, and nothing that tells them a tunnel is there.
//
// A Spec says which site: the built-in page (the default), a directory of
// static files, a reverse proxy to another site, or off.
package masquerade

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"
)

// Off is the Spec that turns the masquerade off: a peer that is not a
// QTunnel client is disconnected, and a client with the wrong secret is
// told so plainly (useful on a private network, where no one probes).
const Off = "off"

// Default is the Spec of the built-in page (so is "").
const Default = "default"

// MaxRequestBody bounds what a probe may upload through a reverse proxy.
const MaxRequestBody = 1 << 20

// Handler returns the web site that spec describes, or nil for Off.
//
//	"" or "default"        a small built-in page ("/" answers 200, the rest 404)
//	"off"                  none
//	"https://example.com"  a reverse proxy to that site (http:// too)
//	"/srv/www"             static files from that directory
func Handler(spec string, log *slog.Logger) (http.Handler, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch {
	case spec == "" || spec == Default:
		return builtin(), nil
	case spec == Off:
		return nil, nil
	case strings.HasPrefix(spec, "http://") || strings.HasPrefix(spec, "https://"):
		return proxy(spec, log)
	case strings.Contains(spec, "://"):
		return nil, fmt.Errorf("masquerade %q: only http:// and https:// sites can be proxied", spec)
	}
	fi, err := os.Stat(spec)
	if err != nil {
		return nil, fmt.Errorf("masquerade directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("masquerade %q is not a directory (give a directory of static files, an https:// site, default or off)", spec)
	}
	return http.FileServerFS(os.DirFS(spec)), nil
}

// Check reports whether spec is well formed, without touching the disk or
// the network beyond what Handler does; config validation calls it.
func Check(spec string) error {
	_, err := Handler(spec, nil)
	return err
}

const page = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Welcome</title></head>
<body>
<h1>Welcome</h1>
<p>This site is under construction.</p>
</body>
</html>
`

func builtin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" && r.URL.Path != "/index.html" {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Last-Modified", "Mon, 02 Nov 2026 09:00:00 GMT")
		_, _ = w.Write([]byte(page))
	})
}

func proxy(spec string, log *slog.Logger) (http.Handler, error) {
	u, err := url.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("masquerade site: %w", err)
	}
	if u.Host == "" {
		return nil, errors.New("masquerade site: no host in " + spec)
	}
	tr := &http.Transport{
		Proxy:                 nil, // never through an environment's proxy: the site is named
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 15 * time.Second,
		MaxIdleConns:          16,
		MaxConnsPerHost:       64, // a flood of probes cannot open unbounded connections to the site
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = u.Host // the site's own name, as a visitor of it would send
		},
		Transport: tr,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Debug("masquerade site did not answer", "err", err)
			http.Error(w, http.StatusText(http.StatusBadGateway), http.StatusBadGateway)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBody)
		rp.ServeHTTP(w, r)
	}), nil
}
