// Command uishots runs the desktop client's UI on a canned controller, for
// the screenshots in docs/screenshots (scripts/screenshots.sh). It talks
// to no engine, keyring or service: every action only changes the canned
// view.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"sync"
	"time"

	"fyne.io/fyne/v2/app"

	"github.com/qtunnel/qtunnel/client-gui/internal/appmodel"
	"github.com/qtunnel/qtunnel/client-gui/internal/ui"
)

func main() {
	settings := flag.Bool("settings", false, "open the settings window at start")
	setup := flag.Bool("setup", false, "pretend nothing is saved, so the first-run setup opens")
	problem := flag.Bool("problem", false, "show a problem in the tray menu")
	flag.Parse()

	a := app.NewWithID("io.qtunnel.uishots")
	c := newDemo(*setup, *problem)
	u := ui.New(a, c, ui.Options{AppName: "QTunnel"})
	u.Start()
	defer u.Close()
	if *settings {
		u.ShowSettings()
	}
	a.Run()
}

// demo is a Controller with a connected tunnel and sample settings.
type demo struct {
	mu       sync.Mutex
	view     appmodel.View
	settings appmodel.Settings
	firstRun bool
	subs     map[int]func(appmodel.View)
	next     int
}

func newDemo(firstRun, problem bool) *demo {
	d := &demo{
		firstRun: firstRun,
		subs:     make(map[int]func(appmodel.View)),
		view: appmodel.View{
			State:            appmodel.StateOn,
			StatusLine:       "vps.example.com:443 · 12 ms · ↑ 1.2 MiB/s ↓ 3.4 MiB/s",
			ServiceInstalled: true,
			StartAtLogin:     true,
			Updated:          time.Now(),
		},
		settings: appmodel.Settings{
			Server:    "vps.example.com:443",
			Transport: "quic",
			Pin:       "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			CA:        "",
			Forwards: []appmodel.Forward{
				{Name: "ssh", Listen: "127.0.0.1:2222", Target: "ssh"},
				{Name: "postgres", Listen: "127.0.0.1:5432", Target: "db"},
			},
		},
	}
	if firstRun {
		d.settings = appmodel.Settings{}
		d.view = appmodel.View{State: appmodel.StateOff, StatusLine: "Not set up yet"}
	}
	if problem {
		d.view.State = appmodel.StateError
		d.view.StatusLine = "vps.example.com:443 · not connected"
		d.view.Error = "The server did not accept the secret."
		d.view.Details = "qtunnel-gui demo\nstate: error\nerror: handshake: proof rejected"
	}
	return d
}

func (d *demo) View() appmodel.View {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.view
}

func (d *demo) OnChange(fn func(appmodel.View)) func() {
	d.mu.Lock()
	defer d.mu.Unlock()
	id := d.next
	d.next++
	d.subs[id] = fn
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		delete(d.subs, id)
	}
}

// set changes the view and tells the subscribers.
func (d *demo) set(f func(*appmodel.View)) {
	d.mu.Lock()
	f(&d.view)
	v := d.view
	var fns []func(appmodel.View)
	for _, fn := range d.subs {
		fns = append(fns, fn)
	}
	d.mu.Unlock()
	for _, fn := range fns {
		fn(v)
	}
}

func (d *demo) Toggle(context.Context) error {
	d.set(func(v *appmodel.View) {
		if v.State == appmodel.StateOff {
			v.State, v.StatusLine = appmodel.StateOn, "vps.example.com:443 · 12 ms"
		} else {
			v.State, v.StatusLine = appmodel.StateOff, "Not connected"
		}
	})
	return nil
}

func (d *demo) Settings() appmodel.Settings {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.settings
}
func (d *demo) HasSecret() bool { return !d.firstRun }
func (d *demo) FirstRun() bool  { return d.firstRun }
func (d *demo) LogPath() string { return "/tmp/qtunnel-uishots.log" }

// Validate checks a little, in the words the real model uses, so that a
// screenshot can show an inline error.
func (d *demo) Validate(s appmodel.Settings, _ string) []appmodel.FieldError {
	var errs []appmodel.FieldError
	if _, _, err := net.SplitHostPort(s.Server); err != nil {
		errs = append(errs, appmodel.FieldError{Field: "server", Msg: "Write the server as host:port, like vps.example.com:443."})
	}
	for i, f := range s.Forwards {
		if _, _, err := net.SplitHostPort(f.Listen); err != nil {
			errs = append(errs, appmodel.FieldError{Field: fmt.Sprintf("forwards[%d].listen", i), Msg: "Write a local address as host:port, like 127.0.0.1:2222."})
		}
	}
	return errs
}

func (d *demo) Save(_ context.Context, s appmodel.Settings, secret string) ([]appmodel.FieldError, error) {
	if errs := d.Validate(s, secret); len(errs) > 0 {
		return errs, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.settings = s
	return nil, nil
}

func (d *demo) Import(link string) (appmodel.Settings, string, error) {
	return appmodel.Settings{}, "", errors.New("the demo imports nothing")
}

func (d *demo) InstallService(context.Context) error {
	d.set(func(v *appmodel.View) { v.ServiceInstalled = true })
	return nil
}

func (d *demo) RemoveService(context.Context) error {
	d.set(func(v *appmodel.View) { v.ServiceInstalled = false })
	return nil
}

func (d *demo) SetStartAtLogin(on bool) error {
	d.set(func(v *appmodel.View) { v.StartAtLogin = on })
	return nil
}
