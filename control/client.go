package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"unicode/utf8"
)

// Errors a caller may test for with errors.Is. The errors returned carry
// a sentence for a person on top of these.
var (
	// ErrNotRunning: nothing serves the control socket (there is no
	// socket, or nobody answers on it).
	ErrNotRunning = errors.New("qtunnel is not running")
	// ErrForbidden: the socket belongs to another user, as the operating
	// system (permission denied), the server (its peer check) or Dial
	// (the server's owner) found.
	ErrForbidden = errors.New("the control socket belongs to another user")
	// ErrInUse: Listen found the socket (or pipe) held by another
	// running process.
	ErrInUse = errors.New("the control socket is in use")
	// ErrStreamEnded: the server closed the event stream, usually
	// because the process is stopping.
	ErrStreamEnded = errors.New("the event stream ended")
)

// APIError is an error the control API answered with.
type APIError struct {
	StatusCode int    // HTTP status: 422 for a refused configuration or secret
	Message    string // the server's words, for a person
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("control API: %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	return e.Message
}

// kindError is an error with a sentence of its own that also matches one
// of the sentinels above, and the cause below it.
type kindError struct {
	kind  error
	msg   string
	cause error
}

func (e *kindError) Error() string { return e.msg }

func (e *kindError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// Response size limits: a Status with many connections is still far
// below these.
const (
	maxResponseBytes = 4 << 20
	maxErrorBytes    = 64 << 10
)

// Client talks to the control API of the qtunnel process at a socket
// path. It keeps no connection open between calls, so it needs no Close,
// and it may be used from several goroutines.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a Client for the control socket (or, on Windows, the
// named pipe) at path, such as DefaultPath returns. It does not connect.
func NewClient(path string) *Client {
	c := &Client{path: path}
	c.hc = &http.Client{Transport: &http.Transport{
		// Proxy stays nil: the control API must never go to a proxy.
		DialContext: c.dial,
		// One connection per call: calls are rare and local, and no idle
		// connection (with its goroutines) outlives a call.
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}}
	return c
}

// Path is the socket path the client connects to.
func (c *Client) Path() string { return c.path }

// Status returns the process's current Status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// Start starts the tunnel (qtunnel up); a no-op if it runs.
func (c *Client) Start(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/start", nil, nil)
}

// Stop stops the tunnel but not the process (qtunnel down); a no-op if it
// is off.
func (c *Client) Stop(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/stop", nil, nil)
}

// Reload makes the process read its configuration file again. It returns
// what changed, in a sentence; if the file was refused, the error is an
// *APIError (status 422) whose Message says why.
func (c *Client) Reload(ctx context.Context) (string, error) {
	var r messageResponse
	if err := c.do(ctx, http.MethodPost, "/v1/reload", nil, &r); err != nil {
		return "", err
	}
	return r.Message, nil
}

// Migrate moves the client's QUIC connection to a new network path now,
// and returns where to, in a sentence.
func (c *Client) Migrate(ctx context.Context) (string, error) {
	var r messageResponse
	if err := c.do(ctx, http.MethodPost, "/v1/migrate", nil, &r); err != nil {
		return "", err
	}
	return r.Message, nil
}

// SetSecret replaces the process's shared secret in memory. The secret
// must be UTF-8 text (JSON carries nothing else). The request buffer is
// zeroed afterwards; secret itself is left to the caller.
func (c *Client) SetSecret(ctx context.Context, secret []byte) error {
	if len(secret) == 0 {
		return errors.New("control: the secret is empty")
	}
	if !utf8.Valid(secret) {
		return errors.New("control: the secret is not UTF-8 text, which the control API cannot carry")
	}
	// Sized for the worst case (every byte a \u00XX escape) so that
	// append never leaves a copy behind in a discarded array.
	body := make([]byte, 0, len(`{"secret":""}`)+6*len(secret))
	defer func() { clear(body[:cap(body)]) }()
	body = append(body, `{"secret":"`...)
	body = appendJSONString(body, secret)
	body = append(body, `"}`...)
	return c.do(ctx, http.MethodPut, "/v1/secret", body, nil)
}

// Events calls fn with each event the process reports, in order, the
// first being a stats Event with the current Status. It blocks until ctx
// is done (then it returns nil) or the stream fails: the process stopped
// (ErrStreamEnded) or could not be reached (ErrNotRunning, ErrForbidden).
// A UI runs it in a goroutine of its own and calls it again, after a
// pause, when it returns an error.
//
// fn runs on Events' goroutine; while it runs, no event is read, and a
// reader that falls more than about 10 seconds behind is disconnected.
func (c *Client) Events(ctx context.Context, fn func(Event)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://qtunnel/v1/events", nil)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return c.transportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c.responseError(resp)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var ev Event
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return &kindError{
					kind:  ErrStreamEnded,
					msg:   fmt.Sprintf("the qtunnel at %s closed the event stream (it may have stopped)", c.path),
					cause: err,
				}
			}
			return fmt.Errorf("control: event stream from %s: %w", c.path, err)
		}
		fn(ev)
	}
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://qtunnel"+path, rd)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.transportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return c.responseError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(out); err != nil {
		return fmt.Errorf("control: read the answer to %s %s: %w", method, path, err)
	}
	return nil
}

// dial is the Transport's DialContext: whatever address net/http asks
// for, it connects to the socket, and it turns failures into sentences.
func (c *Client) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	conn, err := Dial(ctx, c.path)
	if err == nil {
		return conn, nil
	}
	var ke *kindError
	switch {
	case errors.As(err, &ke):
		return nil, err
	case errors.Is(err, fs.ErrNotExist):
		return nil, &kindError{
			kind:  ErrNotRunning,
			msg:   fmt.Sprintf("no qtunnel%s is running (no control socket at %s); start one, or give -control=PATH", c.roleWord(), c.path),
			cause: err,
		}
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil, &kindError{
			kind:  ErrNotRunning,
			msg:   fmt.Sprintf("no qtunnel%s is running (nothing answers on control socket %s, left by one that stopped); start one, or give -control=PATH", c.roleWord(), c.path),
			cause: err,
		}
	case errors.Is(err, fs.ErrPermission):
		return nil, &kindError{
			kind:  ErrForbidden,
			msg:   fmt.Sprintf("permission denied on control socket %s: it belongs to another user; run this as the user who runs that qtunnel", c.path),
			cause: err,
		}
	}
	return nil, fmt.Errorf("control: connect to %s: %w", c.path, err)
}

// roleWord guesses " client" or " server" from a default socket name, for
// messages; "" when the name says nothing.
func (c *Client) roleWord() string {
	name := strings.TrimSuffix(filepath.Base(c.path), ".sock")
	for _, r := range []Role{RoleClient, RoleServer} {
		if name == string(r) || strings.HasSuffix(name, "-"+string(r)) {
			return " " + string(r)
		}
	}
	return ""
}

// transportError unwraps the sentence dial made from the *url.Error
// net/http wraps it in.
func (c *Client) transportError(err error) error {
	var ke *kindError
	if errors.As(err, &ke) {
		return ke
	}
	return fmt.Errorf("control socket %s: %w", c.path, err)
}

// responseError turns a non-2xx answer into an *APIError, or ErrForbidden
// for the peer check's 403 (which is plain text, not JSON).
func (c *Client) responseError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	var er errorResponse
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &er) == nil && er.Error != "" {
		msg = er.Error
	}
	apiErr := &APIError{StatusCode: resp.StatusCode, Message: msg}
	if resp.StatusCode == http.StatusForbidden {
		return &kindError{
			kind:  ErrForbidden,
			msg:   fmt.Sprintf("control socket %s: %s", c.path, apiErr.Error()),
			cause: apiErr,
		}
	}
	return apiErr
}

// appendJSONString appends s, valid UTF-8, escaped for a JSON string.
func appendJSONString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
