package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"syscall"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"

	"github.com/qtunnel/qtunnel/client-gui/internal/appmodel"
	"github.com/qtunnel/qtunnel/client-gui/internal/autostart"
	"github.com/qtunnel/qtunnel/client-gui/internal/bgservice"
	"github.com/qtunnel/qtunnel/client-gui/internal/secretstore"
	"github.com/qtunnel/qtunnel/client-gui/internal/ui"
	"github.com/qtunnel/qtunnel/control"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// paths are where the app keeps its things, per user.
type paths struct {
	config, control, log, secretFallback string
}

func defaultPaths() (paths, error) {
	cfgDir, err := os.UserConfigDir()
	if err != nil {
		return paths{}, err
	}
	cacheDir, err := os.UserCacheDir()
	if err != nil {
		return paths{}, err
	}
	ctl, err := control.DefaultPath(control.RoleClient)
	if err != nil {
		return paths{}, err
	}
	return paths{
		config:         filepath.Join(cfgDir, "qtunnel", "client.yaml"),
		control:        ctl,
		log:            filepath.Join(cacheDir, "qtunnel", "client.log"),
		secretFallback: filepath.Join(cfgDir, "qtunnel", "secret"),
	}, nil
}

func main() {
	p, err := defaultPaths()
	if err != nil {
		fmt.Fprintln(os.Stderr, "qtunnel-gui:", err)
		os.Exit(1)
	}
	fs := flag.NewFlagSet("qtunnel-gui", flag.ContinueOnError)
	service := fs.Bool("service", false, "run the tunnel engine without a window, as the background service does")
	fs.StringVar(&p.config, "config", p.config, "the client configuration `file` the app edits and the engine runs")
	fs.StringVar(&p.control, "control", p.control, "the engine's control socket `path`")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	store := secretstore.Store{Service: "qtunnel", Account: "client", FallbackFile: p.secretFallback}
	if *service {
		err = runService(p, store)
	} else {
		err = runApp(p, store)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "qtunnel-gui:", err)
		os.Exit(1)
	}
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// engineOptions run the engine from the app's files and the keyring.
func engineOptions(p paths, store secretstore.Store, log *slog.Logger) appmodel.EngineOptions {
	return appmodel.EngineOptions{
		ConfigPath:  p.config,
		ControlPath: p.control,
		Secret: func() ([]byte, error) {
			b, _, err := store.Get()
			return b, err
		},
		Logger:  log,
		Version: buildVersion(),
	}
}

// serviceConfig is the background service: this executable with -service.
func serviceConfig(p paths) (bgservice.Config, error) {
	exe, err := os.Executable()
	if err != nil {
		return bgservice.Config{}, err
	}
	return bgservice.Config{
		Name:        "qtunnel-client",
		DisplayName: "QTunnel client",
		Description: "Carries local TCP ports to a QTunnel server.",
		Executable:  exe,
		Args:        []string{"-service", "-config", p.config, "-control", p.control},
		UserService: runtime.GOOS != "windows",
	}, nil
}

// runService is the process the service manager starts.
func runService(p paths, store secretstore.Store) error {
	c, err := serviceConfig(p)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	return bgservice.RunService(c, func(ctx context.Context) error {
		return appmodel.RunEngine(ctx, engineOptions(p, store, log))
	})
}

// runApp is the tray app.
func runApp(p paths, store secretstore.Store) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logFile, err := openLog(p.log)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(logFile, nil))

	var svc appmodel.Service
	if c, err := serviceConfig(p); err == nil {
		if m, err := bgservice.New(c); err == nil {
			svc = serviceAdapter{m}
		} else {
			log.Info("no background service on this system; the engine runs in the app", "why", err)
		}
	}
	exe, _ := os.Executable()
	engine := &appmodel.LocalEngine{Options: engineOptions(p, store, log)}
	model := appmodel.New(appmodel.Options{
		ConfigPath: p.config,
		Control:    control.NewClient(p.control),
		Secrets:    secretsAdapter{store},
		Service:    svc,
		Engine:     engine,
		Autostart:  autostart.Entry{Name: "qtunnel", Label: "QTunnel", Executable: exe},
		LogPath:    p.log,
		Version:    buildVersion(),
	})
	a := app.NewWithID("io.qtunnel.client")
	u := ui.New(a, model, ui.Options{AppName: "QTunnel"})
	u.Start()
	defer u.Close()
	go model.Run(ctx)
	// A signal quits the app; Fyne wants that on its own thread.
	context.AfterFunc(ctx, func() { fyne.Do(a.Quit) })
	a.Run()
	stop()
	engine.Wait()
	return nil
}

func openLog(path string) (io.WriteCloser, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("log folder: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}

// secretsAdapter puts the keyring store behind appmodel.Secrets.
type secretsAdapter struct{ s secretstore.Store }

func (a secretsAdapter) Put(b []byte) (string, error) {
	_, err := a.s.Set(b)
	var fallback *secretstore.FallbackError
	if errors.As(err, &fallback) {
		return fallback.Error(), nil
	}
	return "", err
}

func (a secretsAdapter) Has() bool {
	b, _, err := a.s.Get()
	clear(b)
	return err == nil
}

// serviceAdapter puts the service manager behind appmodel.Service.
type serviceAdapter struct{ m *bgservice.Manager }

func (a serviceAdapter) Installed() bool {
	st, err := a.m.Status()
	return err == nil && st.Installed()
}

func (a serviceAdapter) Install(context.Context) error {
	if err := a.m.Install(); err != nil {
		return err
	}
	return a.m.Start()
}

func (a serviceAdapter) Remove(context.Context) error {
	if err := a.m.Stop(); err != nil && !errors.Is(err, bgservice.ErrNotInstalled) {
		return err
	}
	return a.m.Uninstall()
}
