package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// secretSink is a Backend that keeps the secrets it is given; the rest of
// the API is not used by these tests.
type secretSink struct{ got [][]byte }

func (s *secretSink) Status() Status                          { return Status{} }
func (s *secretSink) Start(context.Context) error             { return nil }
func (s *secretSink) Stop(context.Context) error              { return nil }
func (s *secretSink) Reload(context.Context) (string, error)  { return "", nil }
func (s *secretSink) Migrate(context.Context) (string, error) { return "", nil }
func (s *secretSink) Subscribe(context.Context) <-chan Event  { return nil }
func (s *secretSink) SetSecret(_ context.Context, b []byte) error {
	s.got = append(s.got, bytes.Clone(b))
	return nil
}

// FuzzSecretJSON checks the secret's JSON string decoder against
// encoding/json, and against the client's encoder. unquoteJSON only ever
// sees what encoding/json took for a JSON value, so where encoding/json
// decodes a string literal, unquoteJSON must decode it to the same bytes
// (for valid UTF-8, which encoding/json would otherwise alter), never
// growing its buffer (a grown one would leave a copy of the secret behind);
// and what appendJSONString makes of UTF-8 text is valid JSON that both
// decode back to the text.
func FuzzSecretJSON(f *testing.F) {
	for _, s := range []string{
		`"mysecret"`,
		`""`,
		`"\"\\\/\b\f\n\r\t"`,
		`"\u00e9\ud83d\ude00\/x"`,
		`"\ud800"`,
		`"\ud800\u0041"`,
		`"\udc00\ud800"`,
		`"\u12"`,
		`"\x"`,
		`"a\"`,
		"\"tab\there\"",
		"\"w\xc3\xb6rd \xf0\x9f\x98\x80\"",
		"\"\xff\xfe\"",
		`null`,
		`12`,
		`"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := unquoteJSON(data)
		if err == nil && len(data) >= 2 && cap(got) > len(data)-2 {
			t.Fatalf("unquoteJSON(%q): buffer grew to %d bytes for a %d-byte literal", data, cap(got), len(data))
		}
		if err != nil && got != nil {
			t.Fatalf("unquoteJSON(%q) failed (%v) with a result", data, err)
		}
		var want string
		if json.Unmarshal(data, &want) == nil && bytes.HasPrefix(bytes.TrimSpace(data), []byte(`"`)) {
			trimmed := bytes.TrimSpace(data) // encoding/json passes the token without spaces
			got, err := unquoteJSON(trimmed)
			if err != nil {
				t.Fatalf("encoding/json decodes %q, unquoteJSON refuses it: %v", trimmed, err)
			}
			if utf8.Valid(trimmed) && string(got) != want {
				t.Fatalf("unquoteJSON(%q) = %q, encoding/json says %q", trimmed, got, want)
			}
		}

		// The client's side: any UTF-8 text goes there and back.
		if !utf8.Valid(data) {
			return
		}
		lit := append(append([]byte{'"'}, appendJSONString(nil, data)...), '"')
		if !json.Valid(lit) {
			t.Fatalf("appendJSONString(%q) = %s, not valid JSON", data, lit)
		}
		back, err := unquoteJSON(lit)
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("unquoteJSON(appendJSONString(%q)) = %q, %v", data, back, err)
		}
		var viaJSON string
		if err := json.Unmarshal(lit, &viaJSON); err != nil || viaJSON != string(data) {
			t.Fatalf("encoding/json reads appendJSONString(%q) = %s as %q, %v", data, lit, viaJSON, err)
		}
		if len(lit) > 2+6*len(data) {
			t.Fatalf("appendJSONString(%q) is %d bytes, more than SetSecret's buffer", data, len(lit)-2)
		}
	})
}

// secretErrors are the only answers PUT /v1/secret may give a request it
// refuses: none quotes the body, which holds a secret.
var secretErrors = map[string]bool{
	`the request must be {"secret":"..."} with the secret as a JSON string`: true,
	"the secret is empty": true,
}

// FuzzSecretRequest sends arbitrary bodies to PUT /v1/secret. The handler
// must never panic; it must hand the backend exactly the secret that
// encoding/json reads from a valid UTF-8 body ({"secret": "..."}, keys
// matched as encoding/json does, the last one winning), and refuse with
// 400 what encoding/json refuses, a missing, null or empty secret; and a
// refusal must not echo anything of the body.
func FuzzSecretRequest(f *testing.F) {
	for _, s := range []string{
		`{"secret":"mysecret"}`,
		`{"secret":"\u00e9\ud83d\ude00\/x"}`,
		`{"Secret":"case"}`,
		`{"secret":"a","secret":"b"}`,
		`{"secret":"a","secret":null}`,
		`{"secret":"a","other":[1,{"x":null}]}`,
		` { "secret" : "spaces" } `,
		`{"secret":""}`,
		`{"secret":12}`,
		`{"secret":["a"]}`,
		`{}`,
		`null`,
		`not json`,
		`{"secret":"a"}{"secret":"b"}`,
		"{\"secret\":\"w\xc3\xb6rd\"}",
		"{\"secret\":\"\xff\"}",
		`{"secret":"control` + "\x01" + `"}`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sink := &secretSink{}
		h := newHandler(sink)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPut, "/v1/secret", bytes.NewReader(body)))

		var answer struct {
			OK    bool    `json:"ok"`
			Error *string `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
			t.Fatalf("answer %q is not JSON: %v", w.Body.Bytes(), err)
		}
		if w.Body.Len() > 512 {
			t.Fatalf("answer is %d bytes", w.Body.Len())
		}
		if w.Code == http.StatusOK {
			if !answer.OK || answer.Error != nil || len(sink.got) != 1 {
				t.Fatalf("200 with %s and %d secrets set", w.Body.Bytes(), len(sink.got))
			}
		} else {
			if answer.Error == nil || answer.OK || len(sink.got) != 0 {
				t.Fatalf("%d with %s and %d secrets set", w.Code, w.Body.Bytes(), len(sink.got))
			}
			if w.Code == http.StatusBadRequest && !secretErrors[*answer.Error] {
				t.Fatalf("400 says %q", *answer.Error)
			}
		}

		if len(body) > maxBodyBytes {
			if w.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("%d-byte body: %d, want 413", len(body), w.Code)
			}
			return
		}
		var ref struct {
			Secret *string `json:"secret"`
		}
		refErr := json.Unmarshal(body, &ref)
		switch {
		case refErr != nil:
			// unquoteJSON may be laxer than encoding/json only inside a
			// string, which encoding/json checks first.
			if w.Code != http.StatusBadRequest {
				t.Fatalf("encoding/json refuses %q (%v), the handler answers %d", body, refErr, w.Code)
			}
		case ref.Secret == nil || *ref.Secret == "":
			if w.Code != http.StatusBadRequest {
				t.Fatalf("%q has no secret, the handler answers %d", body, w.Code)
			}
		default:
			if w.Code != http.StatusOK {
				t.Fatalf("%q: %d %s, want 200", body, w.Code, w.Body.Bytes())
			}
			if utf8.Valid(body) && string(sink.got[0]) != *ref.Secret {
				t.Fatalf("%q: the backend got %q, encoding/json reads %q", body, sink.got[0], *ref.Secret)
			}
		}
	})
}

// FuzzResponseError feeds the client arbitrary error answers (the control
// socket's peer may be anything that listens there). The error it makes
// must keep the status code, be bounded by what it reads, take the
// server's {"error": "..."} message when there is one, and be
// ErrForbidden exactly for 403.
func FuzzResponseError(f *testing.F) {
	f.Add(http.StatusUnprocessableEntity, []byte(`{"error":"config.yaml:3: listen: want host:port"}`+"\n"))
	f.Add(http.StatusForbidden, []byte("forbidden: the control socket belongs to uid 0\n"))
	f.Add(http.StatusInternalServerError, []byte(`{"error":""}`))
	f.Add(http.StatusNotFound, []byte(`{"error":"no such endpoint: /v2/x"}`))
	f.Add(http.StatusBadGateway, []byte(" \n"))
	f.Add(599, []byte(`{"error":12}`))
	f.Add(100, []byte{})
	c := NewClient("/nonexistent/qtunnel-fuzz.sock")
	f.Fuzz(func(t *testing.T, code int, body []byte) {
		resp := &http.Response{StatusCode: code, Body: io.NopCloser(bytes.NewReader(body))}
		err := c.responseError(resp)
		if err == nil {
			t.Fatal("no error")
		}
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != code {
			t.Fatalf("responseError(%d, %q) = %v, not an *APIError with the status", code, body, err)
		}
		if errors.Is(err, ErrForbidden) != (code == http.StatusForbidden) {
			t.Fatalf("responseError(%d): errors.Is(ErrForbidden) = %t", code, errors.Is(err, ErrForbidden))
		}
		if len(apiErr.Message) > maxErrorBytes {
			t.Fatalf("message of %d bytes, more than the %d read", len(apiErr.Message), maxErrorBytes)
		}
		if msg := err.Error(); msg == "" || len(msg) > maxErrorBytes+len(c.Path())+256 {
			t.Fatalf("error of %d bytes", len(msg))
		}
		var er errorResponse
		if len(body) <= maxErrorBytes && json.Unmarshal(body, &er) == nil && er.Error != "" && apiErr.Message != er.Error {
			t.Fatalf("message %q, the server said %q", apiErr.Message, er.Error)
		}
		if apiErr.Message != strings.TrimSpace(apiErr.Message) && apiErr.Message != er.Error {
			t.Fatalf("message %q not trimmed", apiErr.Message)
		}
	})
}
