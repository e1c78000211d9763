package proto

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

// proofOf returns a proof whose bytes are start, start+1, ... so that a
// swapped or shifted copy is noticed.
func proofOf(start byte) [ProofSize]byte {
	var p [ProofSize]byte
	for i := range p {
		p[i] = start + byte(i)
	}
	return p
}

func TestAuthRequestRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		proof [ProofSize]byte
	}{
		{"zero", [ProofSize]byte{}},
		{"counting", proofOf(1)},
		{"high bytes", proofOf(0xe0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := AuthRequest{Proof: tt.proof}
			b := AppendAuthRequest([]byte("prefix"), in)
			if !bytes.HasPrefix(b, []byte("prefix")) {
				t.Fatalf("Append dropped the existing bytes: %q", b)
			}
			b = b[len("prefix"):]
			if len(b) != AuthRequestSize {
				t.Fatalf("encoded size = %d, want %d", len(b), AuthRequestSize)
			}
			if b[0] != Version {
				t.Fatalf("version byte = %d, want %d", b[0], Version)
			}
			got, err := ParseAuthRequest(b)
			if err != nil {
				t.Fatalf("ParseAuthRequest: %v", err)
			}
			if got != in {
				t.Fatalf("ParseAuthRequest = %+v, want %+v", got, in)
			}
			got, err = ReadAuthRequest(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("ReadAuthRequest: %v", err)
			}
			if got != in {
				t.Fatalf("ReadAuthRequest = %+v, want %+v", got, in)
			}
		})
	}
}

func TestAuthResponseRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   AuthResponse
		want AuthResponse
	}{
		{"ok", AuthResponse{Status: AuthOK, Proof: proofOf(7)}, AuthResponse{Status: AuthOK, Proof: proofOf(7)}},
		{"ok zero proof", AuthResponse{Status: AuthOK}, AuthResponse{Status: AuthOK}},
		// A rejection never carries a proof, whatever the caller put there.
		{"rejected carries zero proof", AuthResponse{Status: AuthRejected, Proof: proofOf(9)}, AuthResponse{Status: AuthRejected}},
		{"retry carries zero proof", AuthResponse{Status: AuthRetry, Proof: proofOf(9)}, AuthResponse{Status: AuthRetry}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendAuthResponse(nil, tt.in)
			if len(b) != AuthResponseSize {
				t.Fatalf("encoded size = %d, want %d", len(b), AuthResponseSize)
			}
			if tt.in.Status != AuthOK && !bytes.Equal(b[2:], make([]byte, ProofSize)) {
				t.Fatalf("rejection carries proof bytes %x", b[2:])
			}
			got, err := ParseAuthResponse(b)
			if err != nil {
				t.Fatalf("ParseAuthResponse: %v", err)
			}
			if got != tt.want {
				t.Fatalf("ParseAuthResponse = %+v, want %+v", got, tt.want)
			}
			got, err = ReadAuthResponse(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("ReadAuthResponse: %v", err)
			}
			if got != tt.want {
				t.Fatalf("ReadAuthResponse = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestStreamRequestRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		target string
		cmd    Command
	}{
		{"default backend", "", CmdConnect},
		{"name", "db", CmdConnect},
		{"host port", "10.0.0.1:5432", CmdConnect},
		{"utf8", "bücher.example:443", CmdConnect},
		{"space and tilde", "a b~", CmdConnect},
		{"max length", strings.Repeat("x", MaxTargetLen), CmdConnect},
		{"heartbeat", "", CmdHeartbeat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := StreamRequest{Command: tt.cmd, Target: tt.target}
			b, err := AppendStreamRequest(nil, in)
			if err != nil {
				t.Fatalf("AppendStreamRequest: %v", err)
			}
			if len(b) != 3+len(tt.target) {
				t.Fatalf("encoded size = %d, want %d", len(b), 3+len(tt.target))
			}
			got, n, err := ParseStreamRequest(b)
			if err != nil {
				t.Fatalf("ParseStreamRequest: %v", err)
			}
			if got != in || n != len(b) {
				t.Fatalf("ParseStreamRequest = %+v, %d; want %+v, %d", got, n, in, len(b))
			}
			got, err = ReadStreamRequest(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("ReadStreamRequest: %v", err)
			}
			if got != in {
				t.Fatalf("ReadStreamRequest = %+v, want %+v", got, in)
			}
		})
	}
}

func TestStreamResponseRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   StreamResponse
		want StreamResponse
	}{
		{"ok", StreamResponse{Status: StatusOK}, StreamResponse{Status: StatusOK}},
		{"not allowed", StreamResponse{StatusNotAllowed, "target \"x\" not allowed"}, StreamResponse{StatusNotAllowed, "target \"x\" not allowed"}},
		{"dial failed", StreamResponse{StatusDialFailed, "connection refused"}, StreamResponse{StatusDialFailed, "connection refused"}},
		{"dial timeout", StreamResponse{StatusDialTimeout, ""}, StreamResponse{StatusDialTimeout, ""}},
		{"draining", StreamResponse{StatusDraining, "bye"}, StreamResponse{StatusDraining, "bye"}},
		{"bad request", StreamResponse{StatusBadRequest, "?"}, StreamResponse{StatusBadRequest, "?"}},
		{"overloaded", StreamResponse{StatusOverloaded, "too many"}, StreamResponse{StatusOverloaded, "too many"}},
		{"max message", StreamResponse{StatusDialFailed, strings.Repeat("m", 255)}, StreamResponse{StatusDialFailed, strings.Repeat("m", 255)}},
		{"256-byte message is cut", StreamResponse{StatusDialFailed, strings.Repeat("m", 255) + "Z"}, StreamResponse{StatusDialFailed, strings.Repeat("m", 255)}},
		{"long message is cut", StreamResponse{StatusDialFailed, strings.Repeat("m", 255) + "TAIL"}, StreamResponse{StatusDialFailed, strings.Repeat("m", 255)}},
		{"very long message is cut", StreamResponse{StatusDialFailed, strings.Repeat("ab", 1000)}, StreamResponse{StatusDialFailed, strings.Repeat("ab", 1000)[:255]}},
		// A status from a newer server reads as a failure.
		{"unknown status", StreamResponse{Status(200), "new"}, StreamResponse{StatusBadRequest, "new"}},
		{"first unknown status", StreamResponse{maxKnownStreamStatus + 1, ""}, StreamResponse{StatusBadRequest, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendStreamResponse([]byte{0xAA}, tt.in)
			if b[0] != 0xAA {
				t.Fatalf("Append overwrote the existing bytes")
			}
			b = b[1:]
			if want := 3 + len(tt.want.Message); len(b) != want {
				t.Fatalf("encoded size = %d, want %d", len(b), want)
			}
			if len(b) > MaxFrameSize {
				t.Fatalf("frame of %d bytes exceeds MaxFrameSize %d", len(b), MaxFrameSize)
			}
			got, n, err := ParseStreamResponse(b)
			if err != nil {
				t.Fatalf("ParseStreamResponse: %v", err)
			}
			if got != tt.want || n != len(b) {
				t.Fatalf("ParseStreamResponse = %+v, %d; want %+v, %d", got, n, tt.want, len(b))
			}
			got, err = ReadStreamResponse(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("ReadStreamResponse: %v", err)
			}
			if got != tt.want {
				t.Fatalf("ReadStreamResponse = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestAppendStreamRequestRefuses(t *testing.T) {
	tests := []struct {
		name string
		req  StreamRequest
	}{
		{"target too long", StreamRequest{Command: CmdConnect, Target: strings.Repeat("x", MaxTargetLen+1)}},
		{"heartbeat with a target", StreamRequest{Command: CmdHeartbeat, Target: "db"}},
		{"target far too long", StreamRequest{Command: CmdConnect, Target: strings.Repeat("x", 4096)}},
		{"zero command", StreamRequest{Command: 0, Target: "db"}},
		{"unknown command", StreamRequest{Command: 3, Target: "db"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("keep")
			b, err := AppendStreamRequest(prefix, tt.req)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if string(b) != "keep" {
				t.Fatalf("on error, b = %q, want the input unchanged", b)
			}
		})
	}
}

func TestParseAuthRequestErrors(t *testing.T) {
	good := AppendAuthRequest(nil, AuthRequest{Proof: proofOf(1)})
	wrongVersion := bytes.Clone(good)
	wrongVersion[0] = 2
	zeroVersion := bytes.Clone(good)
	zeroVersion[0] = 0
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"one byte", good[:1], ErrMalformed},
		{"truncated", good[:len(good)-1], ErrMalformed},
		{"too long", append(bytes.Clone(good), 0), ErrMalformed},
		{"wrong version", wrongVersion, ErrVersion},
		{"zero version", zeroVersion, ErrVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseAuthRequest(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseAuthResponseErrors(t *testing.T) {
	good := AppendAuthResponse(nil, AuthResponse{Status: AuthOK, Proof: proofOf(1)})
	with := func(i int, v byte) []byte {
		b := bytes.Clone(good)
		b[i] = v
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"truncated", good[:len(good)-1], ErrMalformed},
		{"too long", append(bytes.Clone(good), 0), ErrMalformed},
		{"wrong version", with(0, 9), ErrVersion},
		{"unknown status 3", with(1, 3), ErrMalformed},
		{"unknown status 255", with(1, 255), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAuthResponse(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if got != (AuthResponse{}) {
				t.Fatalf("on error got %+v, want the zero value", got)
			}
		})
	}
}

func TestParseStreamRequestErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, io.ErrUnexpectedEOF},
		{"version only", []byte{Version}, io.ErrUnexpectedEOF},
		{"no length", []byte{Version, byte(CmdConnect)}, io.ErrUnexpectedEOF},
		{"target truncated", []byte{Version, byte(CmdConnect), 3, 'd', 'b'}, io.ErrUnexpectedEOF},
		{"target missing", []byte{Version, byte(CmdConnect), 255}, io.ErrUnexpectedEOF},
		{"wrong version", []byte{2, byte(CmdConnect), 0}, ErrVersion},
		{"version zero", []byte{0, byte(CmdConnect), 0}, ErrVersion},
		{"unknown command", []byte{Version, 3, 0}, ErrMalformed},
		{"heartbeat with a target", []byte{Version, byte(CmdHeartbeat), 2, 'd', 'b'}, ErrMalformed},
		{"command zero", []byte{Version, 0, 2, 'd', 'b'}, ErrMalformed},
		{"newline in target", []byte{Version, byte(CmdConnect), 3, 'd', '\n', 'b'}, ErrMalformed},
		{"NUL in target", []byte{Version, byte(CmdConnect), 1, 0}, ErrMalformed},
		{"ESC in target", []byte{Version, byte(CmdConnect), 2, 0x1b, '['}, ErrMalformed},
		{"DEL in target", []byte{Version, byte(CmdConnect), 1, 0x7f}, ErrMalformed},
		{"tab in target", []byte{Version, byte(CmdConnect), 1, '\t'}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n, err := ParseStreamRequest(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseStreamRequest err = %v, want %v", err, tt.want)
			}
			if got != (StreamRequest{}) || n != 0 {
				t.Fatalf("on error got %+v, %d; want zero", got, n)
			}
			// A reader that ends inside the frame reports the same, except
			// that nothing at all is a clean io.EOF: no frame was started.
			want := tt.want
			if len(tt.in) == 0 {
				want = io.EOF
			}
			if _, err := ReadStreamRequest(bytes.NewReader(tt.in)); !errors.Is(err, want) {
				t.Fatalf("ReadStreamRequest err = %v, want %v", err, want)
			}
		})
	}
}

func TestParseStreamResponseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, io.ErrUnexpectedEOF},
		{"two bytes", []byte{Version, 0}, io.ErrUnexpectedEOF},
		{"message truncated", []byte{Version, 2, 5, 'a'}, io.ErrUnexpectedEOF},
		{"wrong version", []byte{0x7f, 0, 0}, ErrVersion},
		{"newline in message", []byte{Version, 2, 5, 'o', 'k', '\n', 'x', 'y'}, ErrMalformed},
		{"CR in message", []byte{Version, 2, 1, '\r'}, ErrMalformed},
		{"DEL in message", []byte{Version, 2, 1, 0x7f}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n, err := ParseStreamResponse(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseStreamResponse err = %v, want %v", err, tt.want)
			}
			if got != (StreamResponse{}) || n != 0 {
				t.Fatalf("on error got %+v, %d; want zero", got, n)
			}
			want := tt.want
			if len(tt.in) == 0 {
				want = io.EOF
			}
			if _, err := ReadStreamResponse(bytes.NewReader(tt.in)); !errors.Is(err, want) {
				t.Fatalf("ReadStreamResponse err = %v, want %v", err, want)
			}
		})
	}
}

func TestReadAuthTruncated(t *testing.T) {
	req := AppendAuthRequest(nil, AuthRequest{Proof: proofOf(3)})
	resp := AppendAuthResponse(nil, AuthResponse{Status: AuthOK, Proof: proofOf(3)})
	for _, cut := range []int{1, 2, ProofSize / 2, AuthRequestSize - 1} {
		if _, err := ReadAuthRequest(bytes.NewReader(req[:cut])); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("ReadAuthRequest(%d of %d bytes) err = %v, want io.ErrUnexpectedEOF", cut, len(req), err)
		}
	}
	for _, cut := range []int{1, 2, ProofSize / 2, AuthResponseSize - 1} {
		if _, err := ReadAuthResponse(bytes.NewReader(resp[:cut])); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("ReadAuthResponse(%d of %d bytes) err = %v, want io.ErrUnexpectedEOF", cut, len(resp), err)
		}
	}
	if _, err := ReadAuthRequest(bytes.NewReader(nil)); !errors.Is(err, io.EOF) {
		t.Errorf("ReadAuthRequest(empty) err = %v, want io.EOF", err)
	}
	if _, err := ReadAuthResponse(bytes.NewReader(nil)); !errors.Is(err, io.EOF) {
		t.Errorf("ReadAuthResponse(empty) err = %v, want io.EOF", err)
	}
}

// TestReadTruncatedEveryLength cuts valid stream frames at every length and
// checks that the readers never succeed and always say io.ErrUnexpectedEOF
// (or io.EOF for nothing at all).
func TestReadTruncatedEveryLength(t *testing.T) {
	req, err := AppendStreamRequest(nil, StreamRequest{Command: CmdConnect, Target: "backend.internal:8080"})
	if err != nil {
		t.Fatal(err)
	}
	resp := AppendStreamResponse(nil, StreamResponse{Status: StatusDialFailed, Message: "connection refused"})
	for cut := 0; cut < len(req); cut++ {
		want := io.ErrUnexpectedEOF
		if cut == 0 {
			want = io.EOF
		}
		if _, err := ReadStreamRequest(bytes.NewReader(req[:cut])); !errors.Is(err, want) {
			t.Errorf("ReadStreamRequest(%d of %d bytes) err = %v, want %v", cut, len(req), err, want)
		}
		if _, _, err := ParseStreamRequest(req[:cut]); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("ParseStreamRequest(%d of %d bytes) err = %v, want io.ErrUnexpectedEOF", cut, len(req), err)
		}
	}
	for cut := 0; cut < len(resp); cut++ {
		want := io.ErrUnexpectedEOF
		if cut == 0 {
			want = io.EOF
		}
		if _, err := ReadStreamResponse(bytes.NewReader(resp[:cut])); !errors.Is(err, want) {
			t.Errorf("ReadStreamResponse(%d of %d bytes) err = %v, want %v", cut, len(resp), err, want)
		}
		if _, _, err := ParseStreamResponse(resp[:cut]); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("ParseStreamResponse(%d of %d bytes) err = %v, want io.ErrUnexpectedEOF", cut, len(resp), err)
		}
	}
}

// TestReadLeavesPayload checks that every Read* function consumes exactly
// one frame: the bytes after it (the tunneled payload) stay in the reader.
func TestReadLeavesPayload(t *testing.T) {
	payload := []byte("\x01\x01\x02GET / HTTP/1.1\r\n\r\n")
	streamReq, err := AppendStreamRequest(nil, StreamRequest{Command: CmdConnect, Target: "web"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		frame []byte
		read  func(io.Reader) (any, error)
		want  any
	}{
		{
			"ReadAuthRequest",
			AppendAuthRequest(nil, AuthRequest{Proof: proofOf(5)}),
			func(r io.Reader) (any, error) { return ReadAuthRequest(r) },
			AuthRequest{Proof: proofOf(5)},
		},
		{
			"ReadAuthResponse",
			AppendAuthResponse(nil, AuthResponse{Status: AuthOK, Proof: proofOf(6)}),
			func(r io.Reader) (any, error) { return ReadAuthResponse(r) },
			AuthResponse{Status: AuthOK, Proof: proofOf(6)},
		},
		{
			"ReadStreamRequest",
			streamReq,
			func(r io.Reader) (any, error) { return ReadStreamRequest(r) },
			StreamRequest{Command: CmdConnect, Target: "web"},
		},
		{
			"ReadStreamRequest empty target",
			[]byte{Version, byte(CmdConnect), 0},
			func(r io.Reader) (any, error) { return ReadStreamRequest(r) },
			StreamRequest{Command: CmdConnect},
		},
		{
			"ReadStreamResponse",
			AppendStreamResponse(nil, StreamResponse{Status: StatusOK, Message: "hi"}),
			func(r io.Reader) (any, error) { return ReadStreamResponse(r) },
			StreamResponse{Status: StatusOK, Message: "hi"},
		},
		{
			"ReadStreamResponse empty message",
			AppendStreamResponse(nil, StreamResponse{Status: StatusOK}),
			func(r io.Reader) (any, error) { return ReadStreamResponse(r) },
			StreamResponse{Status: StatusOK},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bytes.NewReader(append(bytes.Clone(tt.frame), payload...))
			got, err := tt.read(r)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if got != tt.want {
				t.Fatalf("read = %+v, want %+v", got, tt.want)
			}
			rest, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rest, payload) {
				t.Fatalf("left in the reader: %q, want %q", rest, payload)
			}
		})
	}
}

// oneByteReader returns one byte per Read, like a slow network.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func TestReadStreamRequestShortReads(t *testing.T) {
	frame, err := AppendStreamRequest(nil, StreamRequest{Command: CmdConnect, Target: "slow.example:22"})
	if err != nil {
		t.Fatal(err)
	}
	br := bytes.NewReader(append(frame, "tail"...))
	got, err := ReadStreamRequest(oneByteReader{br})
	if err != nil {
		t.Fatalf("ReadStreamRequest: %v", err)
	}
	if got.Target != "slow.example:22" {
		t.Fatalf("target = %q", got.Target)
	}
	if br.Len() != len("tail") {
		t.Fatalf("%d bytes left in the reader, want %d", br.Len(), len("tail"))
	}
}

// errReader fails with a non-EOF error after giving some bytes.
type errReader struct {
	data []byte
	err  error
}

func (e *errReader) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, e.err
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, nil
}

func TestReadPassesThroughReaderErrors(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		read func(io.Reader) error
		data []byte
	}{
		{"ReadStreamRequest header", func(r io.Reader) error { _, err := ReadStreamRequest(r); return err }, []byte{Version}},
		{"ReadStreamRequest body", func(r io.Reader) error { _, err := ReadStreamRequest(r); return err }, []byte{Version, 1, 4, 'a'}},
		{"ReadStreamResponse body", func(r io.Reader) error { _, err := ReadStreamResponse(r); return err }, []byte{Version, 0, 4, 'a'}},
		{"ReadAuthRequest", func(r io.Reader) error { _, err := ReadAuthRequest(r); return err }, []byte{Version, 1, 2}},
		{"ReadAuthResponse", func(r io.Reader) error { _, err := ReadAuthResponse(r); return err }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.read(&errReader{data: tt.data, err: boom})
			if !errors.Is(err, boom) {
				t.Fatalf("err = %v, want %v", err, boom)
			}
		})
	}
}

func TestStatusString(t *testing.T) {
	tests := []struct {
		s    Status
		want string
	}{
		{StatusOK, "ok"},
		{StatusNotAllowed, "target not allowed"},
		{StatusDialFailed, "backend unreachable"},
		{StatusDialTimeout, "backend timed out"},
		{StatusDraining, "server shutting down"},
		{StatusBadRequest, "bad request"},
		{StatusOverloaded, "server overloaded"},
		{Status(7), "status 7"},
		{Status(255), "status 255"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("Status(%d).String() = %q, want %q", byte(tt.s), got, tt.want)
		}
	}
}

func TestReadClientAuth(t *testing.T) {
	full := AuthRequest{Proof: proofOf(3)}
	early := EarlyAuthRequest{UnixMilli: 1764590000123, Nonce: [NonceSize]byte{9, 8, 7}, Proof: proofOf(4)}
	fullB := AppendAuthRequest(nil, full)
	earlyB := AppendEarlyAuthRequest(nil, early)
	tests := []struct {
		name    string
		in      []byte
		want    ClientAuth
		wantErr error
	}{
		{"full", fullB, ClientAuth{Request: full}, nil},
		{"early", earlyB, ClientAuth{Early: true, EarlyReq: early}, nil},
		{"full then data", append(slices.Clone(fullB), 1, 2, 3), ClientAuth{Request: full}, nil},
		{"early then data", append(slices.Clone(earlyB), 1, 2, 3), ClientAuth{Early: true, EarlyReq: early}, nil},
		{"unknown first byte", []byte{0x42, 0, 0}, ClientAuth{}, ErrVersion},
		{"empty", nil, ClientAuth{}, io.EOF},
		{"early cut short", earlyB[:EarlyAuthRequestSize-1], ClientAuth{}, io.ErrUnexpectedEOF},
		{"full cut short", fullB[:5], ClientAuth{}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bytes.NewReader(tt.in)
			got, err := ReadClientAuth(r)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if err == nil {
				size := AuthRequestSize
				if got.Early {
					size = EarlyAuthRequestSize
				}
				if r.Len() != len(tt.in)-size {
					t.Fatalf("read %d bytes, want %d", len(tt.in)-r.Len(), size)
				}
			}
		})
	}
}

func TestMaxFrameSize(t *testing.T) {
	if EarlyAuthRequestSize > MaxFrameSize {
		t.Fatalf("early auth frame (%d) exceeds MaxFrameSize %d", EarlyAuthRequestSize, MaxFrameSize)
	}
	if AuthRequestSize > MaxFrameSize || AuthResponseSize > MaxFrameSize {
		t.Fatalf("auth frames (%d, %d) exceed MaxFrameSize %d", AuthRequestSize, AuthResponseSize, MaxFrameSize)
	}
	b, err := AppendStreamRequest(nil, StreamRequest{Command: CmdConnect, Target: strings.Repeat("t", MaxTargetLen)})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != MaxFrameSize {
		t.Fatalf("largest StreamRequest is %d bytes, want MaxFrameSize %d", len(b), MaxFrameSize)
	}
}

func TestAppendStreamRequestRefusesControlCharacters(t *testing.T) {
	if _, err := AppendStreamRequest(nil, StreamRequest{Command: CmdConnect, Target: "db\nforged log line"}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
	if ValidTarget("db\x00") || !ValidTarget("db") || ValidTarget(strings.Repeat("a", 256)) {
		t.Fatal("ValidTarget disagrees with the parser")
	}
}

// Whatever message a server composes, the client must be able to parse it.
func TestAppendStreamResponseCleansMessage(t *testing.T) {
	tests := []struct{ in, want string }{
		{"dial tcp: refused\r\nfake: line", "dial tcp: refused??fake: line"},
		{strings.Repeat("é", 200), strings.Repeat("é", 127)}, // 254 bytes: no half character
		{"plain", "plain"},
	}
	for _, tt := range tests {
		b := AppendStreamResponse(nil, StreamResponse{Status: StatusDialFailed, Message: tt.in})
		got, n, err := ParseStreamResponse(b)
		if err != nil || n != len(b) {
			t.Fatalf("parse of encoded %q: %v", tt.in, err)
		}
		if got.Message != tt.want {
			t.Errorf("message %q, want %q", got.Message, tt.want)
		}
	}
}
