package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/qtunnel/qtunnel/internal/testutil"
)

// webAnswer is what a probe compares: the parts of an HTTP answer that
// do not change from one request to the next.
type webAnswer struct {
	Status      int
	ContentType string
	Body        string
}

func (a webAnswer) String() string {
	return fmt.Sprintf("%d %q %q", a.Status, a.ContentType, a.Body)
}

// getH3 fetches url with quic-go's HTTP/3 client, as a scanner would: it
// has no secret and does not check the certificate.
func getH3(t *testing.T, url string) webAnswer {
	t.Helper()
	tr := &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("HTTP/3 GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("HTTP/3 GET %s: body: %v", url, err)
	}
	if resp.Proto != "HTTP/3.0" {
		t.Errorf("HTTP/3 GET %s: protocol %s", url, resp.Proto)
	}
	return webAnswer{resp.StatusCode, resp.Header.Get("Content-Type"), string(body)}
}

// getCurl fetches url with curl over HTTPS (TLS/TCP); extra picks the
// HTTP version.
func getCurl(t *testing.T, url string, extra ...string) webAnswer {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	args := append([]string{"-sk", "--max-time", "15", "-o", "-", "-w", "\n%{http_code}|%{http_version}|%{content_type}"}, extra...)
	out, err := exec.Command("curl", append(args, url)...).Output()
	if err != nil {
		t.Fatalf("curl %s: %v", url, err)
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	var a webAnswer
	fields := strings.SplitN(s[i+1:], "|", 3)
	if len(fields) != 3 {
		t.Fatalf("curl %s: trailer %q", url, s[i+1:])
	}
	a.Status, _ = strconv.Atoi(fields[0])
	version := fields[1]
	a.ContentType = fields[2]
	a.Body = s[:i]
	t.Logf("curl %s %v: HTTP/%s %d", url, extra, version, a.Status)
	return a
}

// TestProbeSeesWebSite: a peer without the secret, probing a QUIC-mode
// server with a real HTTP/3 client or with curl over HTTPS on the same
// port, gets what the site the server imitates gives, and a QTunnel client
// with the secret is served through the same port all the while.
func TestProbeSeesWebSite(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, "<!doctype html><title>Example bakery</title><p>Fresh bread daily.</p>\n")
		case "/robots.txt":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprint(w, "User-agent: *\nDisallow:\n")
		default:
			http.NotFound(w, r)
		}
	}))
	defer origin.Close()
	direct := func(path string) webAnswer {
		resp, err := http.Get(origin.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return webAnswer{resp.StatusCode, resp.Header.Get("Content-Type"), string(b)}
	}

	backend := testutil.StartEchoBackend(t)
	metricsAddr := testutil.FreeAddr(t)
	s := &tunnelSetup{serverAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), clientAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		stateDir: t.TempDir(), secretPath: secretFile(t, strongSecret), quic: true}
	s.server = start(t, "server", nil, "-listen="+s.serverAddr, "-backend="+backend.Addr(), "-secret-file="+s.secretPath,
		"-quic=true", "-state-dir="+s.stateDir, "-masquerade="+origin.URL, "-metrics="+metricsAddr)
	s.server.waitLog(`msg="server started"`, 20*time.Second)
	s.client = start(t, "client", nil, "-listen="+s.clientAddr, "-backend="+s.serverAddr, "-clientmode=true",
		"-secret-file="+s.secretPath, "-quic=true")
	s.client.waitLog(`msg="connected to server"`, 20*time.Second)

	base := "https://" + s.serverAddr
	for _, path := range []string{"/", "/robots.txt", "/no-such-page"} {
		want := direct(path)
		if got := getH3(t, base+path); got != want {
			t.Errorf("HTTP/3 %s: got %v, the site gives %v", path, got, want)
		}
		for _, version := range []string{"--http2", "--http1.1"} {
			if got := getCurl(t, base+path, version); got != want {
				t.Errorf("curl %s %s: got %v, the site gives %v", version, path, got, want)
			}
		}
	}
	// The client with the secret is served all the while.
	echoThrough(t, s.clientAddr, 1<<20, 7)

	m := scrape(t, metricsAddr)
	if v := m["qtunnel_web_visitors_total"]; v < 9 {
		t.Errorf("server counted %v web visitors, want at least 9 (one per probe)", v)
	}
	if v := m["qtunnel_auth_failures_total"]; v != 0 {
		t.Errorf("server counted %v wrong secrets from probes that sent none", v)
	}
	if v := m["qtunnel_handshakes_total"]; v != 1 {
		t.Errorf("server counted %v client handshakes, want 1", v)
	}
}

// TestProbeDefaultPage: with no masquerade configured, a probe gets the
// built-in page over HTTP/3 and HTTPS alike; with -masquerade=off, the
// TLS/TCP peer gets no web answer at all.
func TestProbeDefaultPage(t *testing.T) {
	backend := testutil.StartEchoBackend(t)
	for _, mode := range []string{"default", "off"} {
		t.Run(mode, func(t *testing.T) {
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			args := []string{"-listen=" + addr, "-backend=" + backend.Addr(), "-secret-file=" + secretFile(t, strongSecret),
				"-quic=true", "-state-dir=" + t.TempDir()}
			if mode == "off" {
				args = append(args, "-masquerade=off")
			}
			srv := start(t, "server", nil, args...)
			srv.waitLog(`msg="server started"`, 20*time.Second)
			if mode == "off" {
				out, err := exec.Command("curl", "-sk", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "https://"+addr+"/").Output()
				if err == nil || string(out) != "000" {
					t.Errorf("curl with the masquerade off: %q, %v; want no HTTP answer", out, err)
				}
				return
			}
			h3 := getH3(t, "https://"+addr+"/")
			if h3.Status != 200 || !strings.Contains(h3.Body, "<title>Welcome</title>") {
				t.Errorf("HTTP/3 probe got %v; want the built-in page", h3)
			}
			if got := getCurl(t, "https://"+addr+"/"); got != h3 {
				t.Errorf("HTTPS probe got %v; HTTP/3 got %v", got, h3)
			}
			if got := getH3(t, "https://"+addr+"/admin"); got.Status != http.StatusNotFound {
				t.Errorf("HTTP/3 /admin: %v, want 404", got)
			}
		})
	}
}
