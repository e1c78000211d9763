package transport

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// maxStoredSessions bounds the session file: one entry per server name.
const maxStoredSessions = 64

// sessionStore keeps TLS session tickets, in memory and, if it has a file,
// on disk (mode 0600), so that a client that restarts resumes its session
// with 0-RTT. A ticket holds a resumption secret: whoever reads the file can
// resume as this client (though not prove the shared secret, which the
// server asks for anyway), so it is kept like a private key.
type sessionStore struct {
	path string // "" keeps tickets in memory only

	mu       sync.Mutex
	sessions map[string]storedSession
}

// storedSession is one ticket as crypto/tls exports it.
type storedSession struct {
	Ticket []byte `json:"ticket"`
	State  []byte `json:"state"`
}

type sessionFile struct {
	Version  int                      `json:"version"`
	Sessions map[string]storedSession `json:"sessions"`
}

// openSessionStore loads path, if any. A missing or unreadable file is an
// empty store: tickets are an optimisation, never a reason not to start.
func openSessionStore(path string) (*sessionStore, error) {
	s := &sessionStore{path: path, sessions: map[string]storedSession{}}
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path) // #nosec G304 -- the session ticket store in the state directory
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read session file: %w", err)
	}
	var f sessionFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version != 1 {
		return s, fmt.Errorf("session file %s is not one this version wrote; starting without it", path)
	}
	for k, v := range f.Sessions {
		if len(s.sessions) < maxStoredSessions {
			s.sessions[k] = v
		}
	}
	return s, nil
}

func (s *sessionStore) get(key string) *tls.ClientSessionState {
	s.mu.Lock()
	e, ok := s.sessions[key]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	state, err := tls.ParseSessionState(e.State)
	if err != nil {
		return nil
	}
	cs, err := tls.NewResumptionState(e.Ticket, state)
	if err != nil {
		return nil
	}
	return cs
}

// put stores cs under key (nil deletes) and writes the file.
func (s *sessionStore) put(key string, cs *tls.ClientSessionState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs == nil {
		if _, ok := s.sessions[key]; !ok {
			return nil
		}
		delete(s.sessions, key)
		return s.save()
	}
	ticket, state, err := cs.ResumptionState()
	if err != nil || state == nil {
		return err
	}
	b, err := state.Bytes()
	if err != nil {
		return err
	}
	if _, ok := s.sessions[key]; !ok && len(s.sessions) >= maxStoredSessions {
		for k := range s.sessions { // drop any one: a full file of servers is rare
			delete(s.sessions, k)
			break
		}
	}
	s.sessions[key] = storedSession{Ticket: ticket, State: b}
	return s.save()
}

// save writes the file atomically (a temporary file renamed over it).
// Called with s.mu held.
func (s *sessionStore) save() error {
	if s.path == "" {
		return nil
	}
	b, err := json.Marshal(sessionFile{Version: 1, Sessions: s.sessions})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("session file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".sessions-*")
	if err != nil {
		return fmt.Errorf("session file: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(b)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.path)
	}
	if err != nil {
		return fmt.Errorf("session file: %w", err)
	}
	return nil
}

// attemptCache is the tls.ClientSessionCache of one connection attempt. It
// resumes from the store, but holds the tickets the server sends until the
// server has proved the secret on this connection: a ticket from a server
// that has not, perhaps a man in the middle, must never carry our 0-RTT
// data.
type attemptCache struct {
	store    *sessionStore
	onError  func(error)
	verified atomic.Bool

	mu      sync.Mutex
	pending map[string]*tls.ClientSessionState
}

func newAttemptCache(store *sessionStore, onError func(error)) *attemptCache {
	return &attemptCache{store: store, onError: onError, pending: map[string]*tls.ClientSessionState{}}
}

// Get implements tls.ClientSessionCache.
func (c *attemptCache) Get(key string) (*tls.ClientSessionState, bool) {
	cs := c.store.get(key)
	return cs, cs != nil
}

// Put implements tls.ClientSessionCache.
func (c *attemptCache) Put(key string, cs *tls.ClientSessionState) {
	if cs == nil || c.verified.Load() {
		c.save(key, cs)
		return
	}
	c.mu.Lock()
	c.pending[key] = cs
	c.mu.Unlock()
}

// confirm is called once the server has proved the secret: the tickets it
// sent are kept, and later ones go straight to the store.
func (c *attemptCache) confirm() {
	c.verified.Store(true)
	c.mu.Lock()
	pending := c.pending
	c.pending = map[string]*tls.ClientSessionState{}
	c.mu.Unlock()
	for k, cs := range pending {
		c.save(k, cs)
	}
}

func (c *attemptCache) save(key string, cs *tls.ClientSessionState) {
	if err := c.store.put(key, cs); err != nil && c.onError != nil {
		c.onError(err)
	}
}
