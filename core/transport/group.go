package transport

import (
	"context"
	"sync"
)

// group tracks goroutines that may only start while the group is open, so
// that closing it and waiting for the goroutines cannot race with a late
// start (the trap of calling sync.WaitGroup.Add concurrently with Wait).
type group struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// start runs f in a new goroutine unless the group is closed; it reports
// whether f was started.
func (g *group) start(f func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f()
	}()
	return true
}

// close stops new starts.
func (g *group) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// wait waits for every started goroutine, or until ctx is done; it reports
// whether all returned.
func (g *group) wait(ctx context.Context) bool {
	done := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}
