package bgservice

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kardianos/service"

	"github.com/qtunnel/qtunnel/internal/osservice"
)

// RunService is the service process's main loop: it hands control to the
// service manager through kardianos, runs run(ctx) once the service
// starts, and cancels ctx when the service manager stops it (SIGTERM or
// Ctrl-C on Unix, a stop request on Windows), waiting at most
// c.StopTimeout for run to return. It returns run's error (nil after a
// requested stop), so that the process exits non-zero, and the service
// manager restarts it, only after a failure.
//
// If run returns by itself, the service ends: on Unix RunService returns
// at once; on Windows, where kardianos offers no way for a service to stop
// itself, the process exits with status 1 (0 if run returned nil), and the
// Service Control Manager's recovery action restarts it.
//
// Only c.Name (and c.StopTimeout) matter here.
func RunService(c Config, run func(ctx context.Context) error) error {
	if run == nil {
		return errors.New("bgservice: RunService needs a function to run")
	}
	if !osservice.ValidName(c.Name) {
		return fmt.Errorf("bgservice: the service name %q must be letters, digits, '.', '_' and '-'", c.Name)
	}
	p := newProgram(run, c.StopTimeout)
	kc := &service.Config{
		Name: c.Name,
		// Unix backends call RunWait instead of waiting for a signal
		// themselves: it also returns when run ends by itself.
		Option: service.KeyValue{"RunWait": p.wait},
	}
	s, err := service.New(p, kc)
	if err != nil {
		return fmt.Errorf("bgservice: %w", err)
	}
	if err := s.Run(); err != nil {
		return fmt.Errorf("bgservice: run the service %s: %w", c.Name, err)
	}
	select {
	case <-p.done:
		return p.err
	default:
		// Stop gave up waiting (it said so through Run's error, unless
		// kardianos swallowed it): the process is about to exit anyway.
		return fmt.Errorf("bgservice: the engine did not stop within %v", p.stopTimeout)
	}
}

// program adapts run to kardianos's service.Interface. Start launches run
// in a goroutine that closes done when run returns; Stop cancels its
// context and waits for done, bounded.
type program struct {
	run         func(ctx context.Context) error
	stopTimeout time.Duration

	ctx      context.Context
	cancel   context.CancelFunc
	stopping chan struct{} // closed by Stop, before it cancels ctx
	done     chan struct{} // closed when run has returned
	err      error         // run's result; read only after done is closed
}

func newProgram(run func(ctx context.Context) error, stopTimeout time.Duration) *program {
	if stopTimeout <= 0 {
		stopTimeout = DefaultStopTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &program{run: run, stopTimeout: stopTimeout, ctx: ctx, cancel: cancel,
		stopping: make(chan struct{}), done: make(chan struct{})}
}

// Start launches run; kardianos calls it once.
func (p *program) Start(service.Service) error {
	ctx := p.ctx
	go func() {
		defer close(p.done)
		p.err = p.run(ctx)
		select {
		case <-p.stopping:
		default:
			endedByItself(p.err)
		}
	}()
	return nil
}

// Stop asks run to return and waits for it, at most stopTimeout.
func (p *program) Stop(service.Service) error {
	select {
	case <-p.stopping:
	default:
		close(p.stopping)
	}
	p.cancel()
	t := time.NewTimer(p.stopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		return fmt.Errorf("the engine did not stop within %v", p.stopTimeout)
	}
}

// wait is kardianos's RunWait on Unix: it returns on SIGTERM or Ctrl-C,
// as kardianos's own wait does, or when run has returned by itself.
func (p *program) wait() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sig)
	select {
	case <-sig:
	case <-p.done:
	}
}
