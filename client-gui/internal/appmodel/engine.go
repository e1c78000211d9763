package appmodel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/qtunnel/qtunnel/agent"
	"github.com/qtunnel/qtunnel/control"
	"github.com/qtunnel/qtunnel/core/config"
	"github.com/qtunnel/qtunnel/core/secret"
)

// EngineOptions say how to run the client engine from the app's settings:
// the background service and the in-app engine run it the same way.
type EngineOptions struct {
	ConfigPath  string
	ControlPath string
	// Secret reads the shared secret (from the keyring).
	Secret  func() ([]byte, error)
	Logger  *slog.Logger
	Version string
}

// engine is a prepared engine: configuration read, socket bound.
type engine struct {
	agent *agent.Agent
	ln    interface{ Close() error }
	serve func(ctx context.Context) error
}

func prepare(o EngineOptions) (*engine, error) {
	load := func() (*config.Config, error) {
		cfg, err := config.Load(o.ConfigPath)
		if err != nil {
			return nil, err
		}
		if cfg.Mode != config.ModeClient {
			return nil, fmt.Errorf("%s is not a client configuration", o.ConfigPath)
		}
		if cfg.StateDir == "" {
			if dir, err := os.UserCacheDir(); err == nil {
				cfg.StateDir = filepath.Join(dir, "qtunnel")
			}
		}
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		return nil, err
	}
	var secrets []secret.Secret
	if len(cfg.SecretFiles) == 0 {
		b, err := o.Secret()
		if err != nil {
			return nil, fmt.Errorf("read the secret: %w", err)
		}
		s, err := secret.New(b)
		clear(b)
		if err != nil {
			return nil, err
		}
		secrets = []secret.Secret{s}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a, err := agent.New(agent.Options{Config: cfg, Load: load, Secrets: secrets, Logger: o.Logger, Version: o.Version})
	if err != nil {
		return nil, err
	}
	ln, err := control.Listen(o.ControlPath)
	if err != nil {
		return nil, err
	}
	e := &engine{agent: a, ln: ln}
	e.serve = func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		served := make(chan error, 1)
		go func() { served <- control.Serve(ctx, ln, a) }()
		err := a.Run(ctx)
		cancel()
		if serr := <-served; err == nil {
			err = serr
		}
		return err
	}
	return e, nil
}

// RunEngine runs the client engine and its control socket until ctx is
// done: what the background service does.
func RunEngine(ctx context.Context, o EngineOptions) error {
	e, err := prepare(o)
	if err != nil {
		return err
	}
	return e.serve(ctx)
}

// LocalEngine runs the engine inside the app (Engine).
type LocalEngine struct {
	Options EngineOptions

	mu      sync.Mutex
	running bool
	done    chan struct{}
}

// Start implements Engine: it reads the settings and the secret and binds
// the control socket before returning, so that those errors are reported
// to the user; the engine then runs until ctx is done.
func (l *LocalEngine) Start(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running {
		return errors.New("the engine already runs in the app")
	}
	e, err := prepare(l.Options)
	if err != nil {
		return err
	}
	l.running, l.done = true, make(chan struct{})
	go func() {
		defer close(l.done)
		if err := e.serve(ctx); err != nil && l.Options.Logger != nil {
			l.Options.Logger.Error("the in-app engine stopped", "err", err)
		}
		l.mu.Lock()
		l.running = false
		l.mu.Unlock()
	}()
	return nil
}

// Running implements Engine.
func (l *LocalEngine) Running() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.running
}

// Wait blocks until an engine started with Start has stopped.
func (l *LocalEngine) Wait() {
	l.mu.Lock()
	done := l.done
	l.mu.Unlock()
	if done != nil {
		<-done
	}
}
