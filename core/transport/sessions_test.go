package transport

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOpenSessionStore(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content *string // nil: no file
		wantErr bool
	}{
		{"no file", nil, false},
		{"garbage", ptr("not json"), true},
		{"other version", ptr(`{"version":9,"sessions":{}}`), true},
		{"empty store", ptr(`{"version":1,"sessions":{}}`), false},
		{"undecodable ticket", ptr(`{"version":1,"sessions":{"k":{"ticket":"AAAA","state":"AAAA"}}}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			if tt.content != nil {
				if err := os.WriteFile(path, []byte(*tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s, err := openSessionStore(path)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if s == nil {
				t.Fatal("nil store: a bad file must still give a usable, empty store")
			}
			// A state that does not parse resumes nothing, rather than failing.
			if cs := s.get("k"); cs != nil {
				t.Fatalf("get returned a session from %s", tt.name)
			}
		})
	}
}

func TestSessionStoreDeleteWritesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "sessions.json")
	s, err := openSessionStore(path)
	if err != nil {
		t.Fatal(err)
	}
	s.sessions["a"] = storedSession{Ticket: []byte{1}, State: []byte{2}}
	if err := s.put("a", nil); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("file not written: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if d, _ := os.Stat(filepath.Dir(path)); d.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", d.Mode().Perm())
	}
	again, err := openSessionStore(path)
	if err != nil || len(again.sessions) != 0 {
		t.Fatalf("reopened store: %d sessions, %v; want 0, nil", len(again.sessions), err)
	}
}

func ptr(s string) *string { return &s }
