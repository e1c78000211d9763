// Package ui is the Fyne face of the desktop client: the tray icon and its
// menu, the settings window and the first-run setup. It holds no logic of
// its own: everything it shows comes from an appmodel.Controller (a View,
// the saved Settings, FieldErrors) and every click is forwarded to it.
//
// Threading follows Fyne 2.6+: widgets and menus are touched only on the
// Fyne goroutine. The controller's OnChange callback and the goroutines
// that run slow controller calls (Toggle, Save, the service) hand their
// results back with fyne.Do.
//
// Staying alive with no window: closing the settings or setup window only
// hides it (SetCloseIntercept), and once a tray menu is set Fyne's desktop
// driver keeps the app running with no visible window (it owns a hidden
// monitor window of its own), so the app ends only through the menu's Quit.
// On an app that is not a desktop.App (the test driver, mobile) the menu is
// still built, and TrayMenu exposes it.
package ui

import (
	"context"
	"net/url"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/storage"

	"github.com/qtunnel/qtunnel/client-gui/internal/appmodel"
)

// Options tune a UI; the zero value is usable.
type Options struct {
	// AppName is shown in window titles and the setup text; default
	// "QTunnel".
	AppName string
	// OpenURL opens a URL (the log file's file:// URL for "Open logs");
	// default the app's own OpenURL.
	OpenURL func(string) error
}

// UI is the tray menu and the windows of one app. Its methods must be
// called on the Fyne goroutine (or before app.Run).
type UI struct {
	app  fyne.App
	c    appmodel.Controller
	opts Options
	// tray is app as a desktop.App, nil where there is no system tray.
	tray desktop.App

	// ctx bounds the controller calls the UI starts; Close cancels it so
	// that a Toggle or Save still running does not outlive the UI.
	ctx    context.Context
	cancel context.CancelFunc
	// background runs a slow controller call off the Fyne goroutine.
	// Tests replace it to run the call inline, which keeps them
	// deterministic (the test driver's fyne.Do runs its func at once).
	background func(func())

	unsubscribe func()
	started     bool
	closed      bool

	view  appmodel.View
	icons map[appmodel.State]fyne.Resource
	icon  fyne.Resource // the tray icon for the view
	// trayIcon and trayMenu are what the system tray was last given
	// (the menu as menuKey): views come often (the status line carries
	// rates), and rebuilding an unchanged native menu is wasted work
	// that can also close it under the user's pointer.
	trayIcon fyne.Resource
	trayMenu string

	menu  *fyne.Menu
	items trayItems
	// toggling and serviceBusy disable their items while the call runs,
	// so that a second click does not queue a second Toggle.
	toggling, serviceBusy bool
	// actionErr is the last failure of a menu action, shown as a problem
	// when the view has none of its own.
	actionErr string

	settings *settingsForm
	setup    *setupWindow
}

// New builds the tray menu and, lazily, the windows for c on app. Nothing
// is shown and c is not subscribed to until Start.
func New(app fyne.App, c appmodel.Controller, opts Options) *UI {
	if opts.AppName == "" {
		opts.AppName = "QTunnel"
	}
	if opts.OpenURL == nil {
		opts.OpenURL = func(s string) error {
			u, err := url.Parse(s)
			if err != nil {
				return err
			}
			return app.OpenURL(u)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	u := &UI{
		app:        app,
		c:          c,
		opts:       opts,
		ctx:        ctx,
		cancel:     cancel,
		background: func(f func()) { go f() },
		icons:      trayIcons(),
		view:       c.View(),
	}
	if t, ok := app.(desktop.App); ok {
		u.tray = t
	}
	u.buildMenu()
	u.render()
	return u
}

// Start shows the tray (where there is one), follows the controller's
// views, and opens the first-run setup when nothing is saved yet.
func (u *UI) Start() {
	if u.started || u.closed {
		return
	}
	u.started = true
	if u.app.Icon() == nil {
		u.app.SetIcon(appIcon())
	}
	u.unsubscribe = u.c.OnChange(func(v appmodel.View) {
		// OnChange may call on any goroutine: hop to Fyne's.
		fyne.Do(func() { u.setView(v) })
	})
	// A view may have changed between New and the subscription.
	u.setView(u.c.View())
	if u.c.FirstRun() {
		u.ShowSetup()
	}
}

// Close stops following the controller and cancels the calls still
// running. The windows are left to the app, which closes them on quit.
func (u *UI) Close() {
	if u.closed {
		return
	}
	u.closed = true
	if u.unsubscribe != nil {
		u.unsubscribe()
	}
	u.cancel()
}

// TrayMenu is the tray menu as last rendered (also on apps without a
// tray), for tests and for a main menu.
func (u *UI) TrayMenu() *fyne.Menu { return u.menu }

// TrayIcon is the tray icon resource last set; its name says the state
// ("tray-on.png").
func (u *UI) TrayIcon() fyne.Resource { return u.icon }

// setView renders a new view from the controller.
func (u *UI) setView(v appmodel.View) {
	if u.closed {
		return
	}
	if v.State != u.view.State {
		// A failed action's problem is about the state it failed in.
		u.actionErr = ""
	}
	u.view = v
	u.render()
}

// render brings the tray icon and menu in line with the view and the
// actions running.
func (u *UI) render() {
	icon := u.icons[u.view.State]
	if icon == nil {
		icon = u.icons[appmodel.StateError]
	}
	u.icon = icon
	u.updateMenu()
	if !u.started {
		return
	}
	if u.tray == nil {
		u.menu.Refresh()
		return
	}
	if icon != u.trayIcon {
		u.tray.SetSystemTrayIcon(icon)
		u.trayIcon = icon
	}
	if k := menuKey(u.menu); k != u.trayMenu {
		// The desktop driver rebuilds the native menu from the items.
		u.tray.SetSystemTrayMenu(u.menu)
		u.trayMenu = k
	}
}

// run calls f off the Fyne goroutine and then done on it with f's error.
func (u *UI) run(f func(ctx context.Context) error, done func(error)) {
	ctx := u.ctx
	u.background(func() {
		err := f(ctx)
		fyne.Do(func() {
			if u.closed {
				return
			}
			done(err)
		})
	})
}

// logURL is the file:// URL of the log file.
func logURL(path string) string {
	return storage.NewFileURI(path).String()
}
