package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Limits of the HTTP server. Requests are tiny JSON documents from a local
// user; anything bigger is a mistake.
const (
	maxHeaderBytes    = 8 << 10
	maxBodyBytes      = 64 << 10
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	idleTimeout       = 30 * time.Second
	// eventWriteTimeout drops an event stream whose reader stopped reading.
	eventWriteTimeout = 10 * time.Second
	// shutdownTimeout bounds how long Serve waits for requests in flight.
	shutdownTimeout = 2 * time.Second
)

// Serve answers the control API on ln with b until ctx is done, then
// shuts the HTTP server down (event streams end at once, other requests
// get shutdownTimeout to finish) and returns nil. It returns an error if
// ln fails first. Serve closes ln either way.
//
// Routes (JSON in and out; errors are {"error":"..."}):
//
//	GET  /v1/status   Status
//	POST /v1/start    {"ok":true}
//	POST /v1/stop     {"ok":true}
//	POST /v1/reload   {"message":"..."}, or 422 with why the file was refused
//	PUT  /v1/secret   {"secret":"..."} in, {"ok":true} out
//	POST /v1/migrate  {"message":"..."}, or 422 with why it could not
//	GET  /v1/events   newline-delimited Events, a stats Event first
//
// There is no token: the socket (Listen) lets only the owning user in.
func Serve(ctx context.Context, ln net.Listener, b Backend) error {
	// Request contexts derive from base, so that cancelling it ends event
	// streams, which Shutdown would otherwise wait for.
	base, cancelBase := context.WithCancel(ctx)
	defer cancelBase()
	srv := &http.Server{
		Handler:           newHandler(b),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var err error
	select {
	case err = <-served:
		err = fmt.Errorf("control: serve: %w", err)
	case <-ctx.Done():
	}
	cancelBase()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		_ = srv.Close() // Shutdown timed out; Close cuts what is left, and Serve reports nothing more
	}
	if err == nil {
		<-served // http.ErrServerClosed, now that Shutdown closed ln
	}
	return err
}

type route struct {
	method string
	serve  func(http.ResponseWriter, *http.Request)
}

type handler struct {
	b      Backend
	routes map[string]route
}

func newHandler(b Backend) *handler {
	h := &handler{b: b}
	h.routes = map[string]route{
		"/v1/status":  {http.MethodGet, h.status},
		"/v1/start":   {http.MethodPost, h.start},
		"/v1/stop":    {http.MethodPost, h.stop},
		"/v1/reload":  {http.MethodPost, h.reload},
		"/v1/migrate": {http.MethodPost, h.migrate},
		"/v1/secret":  {http.MethodPut, h.secret},
		"/v1/events":  {http.MethodGet, h.events},
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, ok := h.routes[r.URL.Path]
	if !ok {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
		return
	}
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s needs %s, not %s", r.URL.Path, rt.method, r.Method))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	rt.serve(w, r)
}

type okResponse struct {
	OK bool `json:"ok"`
}

type messageResponse struct {
	Message string `json:"message"`
}

type errorResponse struct {
	Error string `json:"error"`
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.b.Status())
}

func (h *handler) start(w http.ResponseWriter, r *http.Request) {
	if err := h.b.Start(r.Context()); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, okResponse{OK: true})
}

func (h *handler) stop(w http.ResponseWriter, r *http.Request) {
	if err := h.b.Stop(r.Context()); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, okResponse{OK: true})
}

func (h *handler) reload(w http.ResponseWriter, r *http.Request) {
	msg, err := h.b.Reload(r.Context())
	if err != nil {
		// The running configuration stays; the file is what is wrong.
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, messageResponse{Message: msg})
}

func (h *handler) migrate(w http.ResponseWriter, r *http.Request) {
	msg, err := h.b.Migrate(r.Context())
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, messageResponse{Message: msg})
}

// secret reads {"secret":"..."} into buffers it zeroes afterwards; the
// decoded bytes go to the backend, which owns them from then on. (Copies
// in net/http's pooled read buffers are out of reach.)
func (h *handler) secret(w http.ResponseWriter, r *http.Request) {
	buf := make([]byte, maxBodyBytes+1)
	defer clear(buf)
	n, err := io.ReadFull(r.Body, buf)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
	case err != nil:
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", maxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "read request: "+err.Error())
		return
	}
	var req struct {
		Secret secretField `json:"secret"`
	}
	err = json.Unmarshal(buf[:n], &req)
	secret := req.Secret.b
	if err != nil {
		clear(secret)
		// No detail: a syntax error would quote a byte of the secret.
		writeError(w, http.StatusBadRequest, `the request must be {"secret":"..."} with the secret as a JSON string`)
		return
	}
	if len(secret) == 0 {
		writeError(w, http.StatusBadRequest, "the secret is empty")
		return
	}
	if err := h.b.SetSecret(r.Context(), secret); err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, okResponse{OK: true})
}

// events streams Events as newline-delimited JSON until the client goes
// away or Serve stops. The first is a stats Event with the current Status
// so that a UI has something to show before anything happens.
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel() // ends the subscription if we stop for a write error
	// Subscribe before taking the snapshot so nothing falls between them.
	sub := h.b.Subscribe(ctx)
	st := h.b.Status()

	rc := http.NewResponseController(w)
	// The connection may serve another request after this one.
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	send := func(ev Event) error {
		// Unsupported only for exotic ResponseWriters; then no deadline.
		_ = rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
		if err := enc.Encode(ev); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send(Event{Type: EventStats, Time: time.Now(), Status: &st}); err != nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-sub:
			if !ok {
				return
			}
			if err := send(ev); err != nil {
				return
			}
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorResponse{Error: msg})
}

// secretField decodes a JSON string into a byte slice of its own, so that
// the secret never becomes an immutable (and unclearable) Go string.
type secretField struct{ b []byte }

func (s *secretField) UnmarshalJSON(data []byte) error {
	clear(s.b) // a repeated key: forget the earlier value
	s.b = nil
	if string(data) == "null" {
		return nil
	}
	b, err := unquoteJSON(data)
	if err != nil {
		return err
	}
	s.b = b
	return nil
}

// unquoteJSON decodes a JSON string literal. The result is allocated once
// at its final capacity (an unescaped string is never longer than its
// literal), so no stray copies are left in freed memory.
func unquoteJSON(data []byte) ([]byte, error) {
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return nil, errors.New("secret must be a JSON string")
	}
	in := data[1 : len(data)-1]
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); {
		c := in[i]
		switch {
		case c == '\\':
			if i+1 >= len(in) {
				clear(out)
				return nil, errors.New("bad escape in secret")
			}
			switch e := in[i+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := hex4(in[i+2:])
				if !ok {
					clear(out)
					return nil, errors.New("bad \\u escape in secret")
				}
				i += 6
				if utf16.IsSurrogate(r) {
					// A pair is two escapes; a lone half is invalid
					// and becomes U+FFFD, as encoding/json does.
					r2, ok := rune(-1), false
					if len(in) >= i+6 && in[i] == '\\' && in[i+1] == 'u' {
						r2, ok = hex4(in[i+2:])
					}
					if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
						r = dec
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
				continue
			default:
				clear(out)
				return nil, errors.New("bad escape in secret")
			}
			i += 2
		case c < 0x20:
			clear(out)
			return nil, errors.New("control character in secret string")
		default:
			out = append(out, c)
			i++
		}
	}
	return out, nil
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
