package masquerade_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qtunnel/qtunnel/core/masquerade"
)

func get(t *testing.T, h http.Handler, method, path string) (int, string, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, "https://vps.example.com"+path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b), rec.Result().Header
}

func TestBuiltinPage(t *testing.T) {
	for _, spec := range []string{"", "default"} {
		h, err := masquerade.Handler(spec, nil)
		if err != nil || h == nil {
			t.Fatalf("Handler(%q) = %v, %v", spec, h, err)
		}
		tests := []struct {
			method, path string
			code         int
			body         string
		}{
			{"GET", "/", 200, "<title>Welcome</title>"},
			{"GET", "/index.html", 200, "<title>Welcome</title>"},
			{"HEAD", "/", 200, ""},
			{"GET", "/wp-admin", 404, "404 page not found"},
			{"POST", "/", 405, "Method Not Allowed"},
		}
		for _, tt := range tests {
			code, body, _ := get(t, h, tt.method, tt.path)
			if code != tt.code || !strings.Contains(body, tt.body) {
				t.Errorf("%s %s: %d %q, want %d with %q", tt.method, tt.path, code, body, tt.code, tt.body)
			}
		}
	}
}

func TestOff(t *testing.T) {
	h, err := masquerade.Handler(masquerade.Off, nil)
	if h != nil || err != nil {
		t.Errorf("Handler(off) = %v, %v; want nil, nil", h, err)
	}
}

func TestProxy(t *testing.T) {
	var sawHost string
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawHost = r.Host
		if r.Header.Get("X-Forwarded-For") != "" {
			t.Error("the proxy told the site who the visitor is (X-Forwarded-For)")
		}
		w.Header().Set("Server", "bakery/1.0")
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "path "+r.URL.Path)
	}))
	defer site.Close()
	h, err := masquerade.Handler(site.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	code, body, hdr := get(t, h, "GET", "/menu")
	if code != http.StatusTeapot || body != "path /menu" || hdr.Get("Server") != "bakery/1.0" {
		t.Errorf("proxied: %d %q %v", code, body, hdr)
	}
	if sawHost != strings.TrimPrefix(site.URL, "http://") {
		t.Errorf("the site saw Host %q, want its own name", sawHost)
	}
	site.Close()
	if code, _, _ := get(t, h, "GET", "/"); code != http.StatusBadGateway {
		t.Errorf("site down: %d, want 502", code)
	}
}

func TestDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<p>my page</p>"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := masquerade.Handler(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, body, _ := get(t, h, "GET", "/"); code != 200 || body != "<p>my page</p>" {
		t.Errorf("GET /: %d %q", code, body)
	}
	if code, _, _ := get(t, h, "GET", "/../../etc/passwd"); code != 404 {
		t.Errorf("GET outside the directory: %d, want 404", code)
	}
}

func TestBadSpecs(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	_ = os.WriteFile(file, nil, 0o644)
	for _, spec := range []string{"ftp://example.com", "https://", "/no/such/dir", file} {
		if err := masquerade.Check(spec); err == nil {
			t.Errorf("Check(%q) = nil, want an error", spec)
		}
	}
}
