package ui

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/qtunnel/qtunnel/assets"
	"github.com/qtunnel/qtunnel/client-gui/internal/appmodel"
)

// fakeController records what the UI asks of it. The UI's calls come on
// the test goroutine (background runs inline), but the mutex keeps the
// fake honest should one not.
type fakeController struct {
	mu        sync.Mutex
	view      appmodel.View
	subs      map[int]func(appmodel.View)
	nextSub   int
	settings  appmodel.Settings
	hasSecret bool
	firstRun  bool
	logPath   string

	toggles      int
	saved        []appmodel.Settings
	savedSecrets []string
	installs     int
	removes      int
	startAtLogin []bool
	imports      []string
	validate     func(appmodel.Settings, string) []appmodel.FieldError
	importLink   func(string) (appmodel.Settings, string, error)
	saveErr      error
}

func newFake() *fakeController {
	return &fakeController{
		view:    appmodel.View{State: appmodel.StateOff},
		subs:    make(map[int]func(appmodel.View)),
		logPath: "/var/log/qtunnel/client.log",
	}
}

func (f *fakeController) View() appmodel.View {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.view
}

func (f *fakeController) OnChange(fn func(appmodel.View)) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.nextSub
	f.nextSub++
	f.subs[id] = fn
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.subs, id)
	}
}

// push sets a new view and tells the subscribers, as the model does.
func (f *fakeController) push(v appmodel.View) {
	f.mu.Lock()
	f.view = v
	var fns []func(appmodel.View)
	for _, fn := range f.subs {
		fns = append(fns, fn)
	}
	f.mu.Unlock()
	for _, fn := range fns {
		fn(v)
	}
}

func (f *fakeController) Toggle(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.toggles++
	return nil
}

func (f *fakeController) Settings() appmodel.Settings { return f.settings }
func (f *fakeController) HasSecret() bool             { return f.hasSecret }
func (f *fakeController) FirstRun() bool              { return f.firstRun }
func (f *fakeController) LogPath() string             { return f.logPath }

func (f *fakeController) Validate(s appmodel.Settings, secret string) []appmodel.FieldError {
	if f.validate == nil {
		return nil
	}
	return f.validate(s, secret)
}

func (f *fakeController) Save(_ context.Context, s appmodel.Settings, secret string) ([]appmodel.FieldError, error) {
	if errs := f.Validate(s, secret); len(errs) > 0 {
		return errs, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.saved = append(f.saved, s)
	f.savedSecrets = append(f.savedSecrets, secret)
	return nil, f.saveErr
}

func (f *fakeController) Import(link string) (appmodel.Settings, string, error) {
	f.imports = append(f.imports, link)
	if f.importLink == nil {
		return appmodel.Settings{}, "", errors.New("not a qtunnel link")
	}
	return f.importLink(link)
}

func (f *fakeController) InstallService(context.Context) error { f.installs++; return nil }
func (f *fakeController) RemoveService(context.Context) error  { f.removes++; return nil }
func (f *fakeController) SetStartAtLogin(on bool) error {
	f.startAtLogin = append(f.startAtLogin, on)
	return nil
}

// validateLikeModel gives the kind of answers the real model gives.
func validateLikeModel(s appmodel.Settings, secret string) []appmodel.FieldError {
	var errs []appmodel.FieldError
	if !strings.Contains(s.Server, ":") {
		errs = append(errs, appmodel.FieldError{Field: "server", Msg: "Write the server as host:port, like vps.example.com:443."})
	}
	for i, fw := range s.Forwards {
		if !strings.Contains(fw.Listen, ":") {
			errs = append(errs, appmodel.FieldError{Field: forwardsField(i, "listen"), Msg: "Write a local address as host:port, like 127.0.0.1:2222."})
		}
	}
	return errs
}

func forwardsField(i int, sub string) string {
	return "forwards[" + string(rune('0'+i)) + "]." + sub
}

// newTestUI starts a UI on the test driver, running controller calls
// inline so that each action has finished when it returns.
func newTestUI(t *testing.T, c *fakeController, opts Options) (*UI, fyne.App) {
	t.Helper()
	app := test.NewTempApp(t)
	u := New(app, c, opts)
	u.background = func(f func()) { f() }
	u.Start()
	t.Cleanup(u.Close)
	return u, app
}

func item(t *testing.T, m *fyne.Menu, label string) *fyne.MenuItem {
	t.Helper()
	for _, it := range m.Items {
		if it.Label == label {
			return it
		}
	}
	t.Fatalf("no menu item %q in %v", label, labels(m))
	return nil
}

func hasItem(m *fyne.Menu, prefix string) *fyne.MenuItem {
	for _, it := range m.Items {
		if !it.IsSeparator && strings.HasPrefix(it.Label, prefix) {
			return it
		}
	}
	return nil
}

func labels(m *fyne.Menu) []string {
	var l []string
	for _, it := range m.Items {
		if it.IsSeparator {
			l = append(l, "---")
		} else {
			l = append(l, it.Label)
		}
	}
	return l
}

func TestToggleCallsControllerAndFollowsState(t *testing.T) {
	c := newFake()
	u, _ := newTestUI(t, c, Options{})

	// Hold the toggle to see the item disabled while it runs.
	var held []func()
	u.background = func(f func()) { held = append(held, f) }
	item(t, u.TrayMenu(), labelConnect).Action()
	if !item(t, u.TrayMenu(), labelConnect).Disabled {
		t.Error("Connect is not disabled while the toggle runs")
	}
	// A second click while it runs starts nothing.
	item(t, u.TrayMenu(), labelConnect).Action()
	if len(held) != 1 {
		t.Fatalf("%d toggles started, want 1", len(held))
	}
	held[0]()
	if c.toggles != 1 {
		t.Fatalf("controller got %d toggles, want 1", c.toggles)
	}
	if item(t, u.TrayMenu(), labelConnect).Disabled {
		t.Error("Connect still disabled after the toggle returned")
	}

	c.push(appmodel.View{State: appmodel.StateOn, StatusLine: "vps.example.com:443 · 12 ms"})
	if hasItem(u.TrayMenu(), labelConnect) != nil {
		t.Errorf("menu still offers Connect when on: %v", labels(u.TrayMenu()))
	}
	u.background = func(f func()) { f() }
	item(t, u.TrayMenu(), labelDisconnect).Action()
	if c.toggles != 2 {
		t.Fatalf("controller got %d toggles, want 2", c.toggles)
	}
}

// trayApp is the test app as a desktop.App, recording what the tray is
// given.
type trayApp struct {
	fyne.App
	icons []string
	menus int
	menu  *fyne.Menu
}

func (a *trayApp) SetSystemTrayMenu(m *fyne.Menu)    { a.menus++; a.menu = m }
func (a *trayApp) SetSystemTrayIcon(r fyne.Resource) { a.icons = append(a.icons, r.Name()) }
func (a *trayApp) SetSystemTrayWindow(fyne.Window)   {}

func TestDesktopAppGetsTray(t *testing.T) {
	c := newFake()
	app := &trayApp{App: test.NewTempApp(t)}
	u := New(app, c, Options{})
	u.background = func(f func()) { f() }
	if app.menus != 0 || len(app.icons) != 0 {
		t.Fatal("tray set before Start")
	}
	u.Start()
	t.Cleanup(u.Close)
	if app.menu != u.TrayMenu() || app.menus != 1 || len(app.icons) != 1 || app.icons[0] != "tray-off.png" {
		t.Fatalf("after Start: menu set %d times (ours %v), icons %v", app.menus, app.menu == u.TrayMenu(), app.icons)
	}

	c.push(appmodel.View{State: appmodel.StateOn, StatusLine: "a"})
	if app.menus != 2 || len(app.icons) != 2 || app.icons[1] != "tray-on.png" {
		t.Errorf("after a new state: menu set %d times, icons %v", app.menus, app.icons)
	}
	// A view that changes nothing shown does not rebuild the native menu.
	c.push(appmodel.View{State: appmodel.StateOn, StatusLine: "a", Details: "more"})
	if app.menus != 2 || len(app.icons) != 2 {
		t.Errorf("after an unchanged view: menu set %d times, icons %v", app.menus, app.icons)
	}
	c.push(appmodel.View{State: appmodel.StateOn, StatusLine: "b"})
	if app.menus != 3 || len(app.icons) != 2 {
		t.Errorf("after a new status line: menu set %d times, icons %v", app.menus, app.icons)
	}
}

func TestViewChangesRender(t *testing.T) {
	c := newFake()
	u, app := newTestUI(t, c, Options{})
	if got := u.TrayIcon().Name(); got != "tray-off.png" {
		t.Errorf("icon %q when off", got)
	}

	names := map[string]bool{}
	for _, s := range []appmodel.State{appmodel.StateConnecting, appmodel.StateOn, appmodel.StateError, appmodel.StateOff} {
		c.push(appmodel.View{State: s, StatusLine: "status " + string(s)})
		want := "tray-" + string(s) + ".png"
		if got := u.TrayIcon().Name(); got != want {
			t.Errorf("state %s: icon %q, want %q", s, got, want)
		}
		names[u.TrayIcon().Name()] = true
		if !bytes.Equal(u.TrayIcon().Content(), assets.TrayIcon(string(s))) {
			t.Errorf("state %s: icon is not the assets' tray icon", s)
		}
		st := u.TrayMenu().Items[0]
		if st.Label != "status "+string(s) || !st.Disabled {
			t.Errorf("state %s: status item %q (disabled %v)", s, st.Label, st.Disabled)
		}
	}
	if len(names) != 4 {
		t.Errorf("icon names not distinct per state: %v", names)
	}

	c.push(appmodel.View{State: appmodel.StateOn, StatusLine: "vps.example.com:443 · 12 ms · ↑ 1.2 MiB/s ↓ 3.4 MiB/s"})
	if got := u.TrayMenu().Items[0].Label; got != "vps.example.com:443 · 12 ms · ↑ 1.2 MiB/s ↓ 3.4 MiB/s" {
		t.Errorf("status item %q", got)
	}
	if hasItem(u.TrayMenu(), problemLabelPrefix) != nil {
		t.Errorf("a problem shown with no error: %v", labels(u.TrayMenu()))
	}

	c.push(appmodel.View{
		State:   appmodel.StateError,
		Error:   "The server refused the secret.",
		Details: "qtunnel-gui 1.0\nstate: error\nerror: handshake: bad proof",
	})
	p := item(t, u.TrayMenu(), "Problem: The server refused the secret.")
	if !p.Disabled {
		t.Error("problem line is clickable")
	}
	item(t, u.TrayMenu(), labelCopyDetails).Action()
	if got := app.Clipboard().Content(); got != "qtunnel-gui 1.0\nstate: error\nerror: handshake: bad proof" {
		t.Errorf("clipboard %q after Copy details", got)
	}

	// The problem goes away with the error.
	c.push(appmodel.View{State: appmodel.StateOff})
	if hasItem(u.TrayMenu(), problemLabelPrefix) != nil || hasItem(u.TrayMenu(), labelCopyDetails) != nil {
		t.Errorf("problem left after the error cleared: %v", labels(u.TrayMenu()))
	}
}

func TestServiceAutostartLogsQuitItems(t *testing.T) {
	c := newFake()
	var opened []string
	u, _ := newTestUI(t, c, Options{OpenURL: func(s string) error { opened = append(opened, s); return nil }})

	item(t, u.TrayMenu(), labelInstall).Action()
	if c.installs != 1 {
		t.Errorf("installs %d", c.installs)
	}
	c.push(appmodel.View{State: appmodel.StateOff, ServiceInstalled: true, StartAtLogin: true})
	item(t, u.TrayMenu(), labelRemove).Action()
	if c.removes != 1 {
		t.Errorf("removes %d", c.removes)
	}
	sal := item(t, u.TrayMenu(), labelStartAtLogin)
	if !sal.Checked {
		t.Error("Start at login not checked")
	}
	sal.Action()
	if len(c.startAtLogin) != 1 || c.startAtLogin[0] {
		t.Errorf("SetStartAtLogin calls %v, want [false]", c.startAtLogin)
	}
	if item(t, u.TrayMenu(), labelStartAtLogin).Checked {
		t.Error("Start at login still checked after turning it off")
	}

	item(t, u.TrayMenu(), labelOpenLogs).Action()
	if len(opened) != 1 || opened[0] != "file:///var/log/qtunnel/client.log" {
		t.Errorf("opened %v", opened)
	}

	// A failed action shows as a problem in the menu.
	u.opts.OpenURL = func(string) error { return errors.New("no program opens .log files") }
	item(t, u.TrayMenu(), labelOpenLogs).Action()
	item(t, u.TrayMenu(), "Problem: no program opens .log files")
	// and goes once the state moves on.
	c.push(appmodel.View{State: appmodel.StateConnecting})
	if p := hasItem(u.TrayMenu(), problemLabelPrefix); p != nil {
		t.Errorf("stale problem %q after the state changed", p.Label)
	}

	q := u.TrayMenu().Items[len(u.TrayMenu().Items)-1]
	if q.Label != labelQuit || !q.IsQuit {
		t.Errorf("last item %q (quit %v)", q.Label, q.IsQuit)
	}
}

func TestInvalidSettingsShowInline(t *testing.T) {
	c := newFake()
	c.hasSecret = true
	c.settings = appmodel.Settings{Server: "vps.example.com:443", Transport: "quic"}
	c.validate = validateLikeModel
	u, _ := newTestUI(t, c, Options{})
	u.ShowSettings()
	f := u.settings
	if !f.shown {
		t.Fatal("settings window not shown")
	}
	if f.server.Text != "vps.example.com:443" {
		t.Errorf("server entry %q", f.server.Text)
	}
	if f.secret.PlaceHolder == "" || !strings.Contains(f.secret.PlaceHolder, "keyring") || !f.secret.Password {
		t.Errorf("secret entry: placeholder %q, masked %v", f.secret.PlaceHolder, f.secret.Password)
	}
	if f.errs["server"].Visible() {
		t.Errorf("server error shown for valid settings: %q", f.errs["server"].Text)
	}

	f.server.SetText("")
	test.Type(f.server, "vps.example.com")
	if l := f.errs["server"]; !l.Visible() || l.Text != "Write the server as host:port, like vps.example.com:443." {
		t.Errorf("server error label %q (visible %v)", l.Text, l.Visible())
	}

	test.Tap(f.add)
	if len(f.rows) != 1 {
		t.Fatalf("%d forward rows after Add", len(f.rows))
	}
	test.Type(f.rows[0].listen, "2222")
	if l := f.rows[0].err; !l.Visible() || !strings.Contains(l.Text, "Write a local address as host:port") {
		t.Errorf("forward row error %q (visible %v)", l.Text, l.Visible())
	}

	test.Tap(f.save)
	if len(c.saved) != 0 {
		t.Fatalf("Save with errors reached the controller: %v", c.saved)
	}
	if !f.shown {
		t.Error("window closed by a failed Save")
	}

	// Fixed, it saves and the window goes away.
	f.server.SetText("vps.example.com:443")
	f.rows[0].listen.SetText("127.0.0.1:2222")
	test.Type(f.rows[0].name, "ssh")
	test.Type(f.rows[0].target, "ssh")
	if f.errs["server"].Visible() || f.rows[0].err.Visible() {
		t.Errorf("errors left: %q, %q", f.errs["server"].Text, f.rows[0].err.Text)
	}
	test.Tap(f.save)
	want := appmodel.Settings{Server: "vps.example.com:443", Transport: "quic",
		Forwards: []appmodel.Forward{{Name: "ssh", Listen: "127.0.0.1:2222", Target: "ssh"}}}
	if len(c.saved) != 1 || !equalSettings(c.saved[0], want) {
		t.Fatalf("saved %+v, want %+v", c.saved, want)
	}
	if c.savedSecrets[0] != "" {
		t.Errorf("an untouched secret was sent as %q; empty keeps the stored one", c.savedSecrets[0])
	}
	if f.shown {
		t.Error("window still shown after Save")
	}
}

func TestRemoveForwardRenumbers(t *testing.T) {
	c := newFake()
	c.settings = appmodel.Settings{Server: "s:1", Transport: "tcp", Forwards: []appmodel.Forward{
		{Name: "a", Listen: "bad", Target: "a"},
		{Name: "b", Listen: "127.0.0.1:2", Target: "b"},
	}}
	c.validate = validateLikeModel
	u, _ := newTestUI(t, c, Options{})
	u.ShowSettings()
	f := u.settings
	if !f.rows[0].err.Visible() || f.rows[1].err.Visible() {
		t.Fatalf("row errors %q / %q", f.rows[0].err.Text, f.rows[1].err.Text)
	}
	f.removeRow(f.rows[0])
	if len(f.rows) != 1 || f.rows[0].name.Text != "b" || f.rows[0].err.Visible() {
		t.Errorf("after removing the bad row: %d rows, first %q, error %q", len(f.rows), f.rows[0].name.Text, f.rows[0].err.Text)
	}
	if got := f.current().Transport; got != "tcp" {
		t.Errorf("transport %q", got)
	}
}

func TestSaveFailureIsShownInPlainWords(t *testing.T) {
	c := newFake()
	c.settings = appmodel.Settings{Server: "s:1", Transport: "quic"}
	c.saveErr = errors.New("the keyring is locked")
	u, _ := newTestUI(t, c, Options{})
	u.ShowSettings()
	test.Tap(u.settings.save)
	if !u.settings.shown {
		t.Error("window closed though Save failed")
	}
	if !strings.Contains(test.RenderToMarkup(u.settings.win.Canvas()), "the keyring is locked") {
		t.Error("save error not shown in the window")
	}
}

func TestImportFillsForm(t *testing.T) {
	c := newFake()
	c.firstRun = true
	c.validate = validateLikeModel
	const link = "qtunnel://secret@vps.example.com:443?pin=sha256:AAAA&forward=ssh,127.0.0.1:2222,ssh"
	c.importLink = func(l string) (appmodel.Settings, string, error) {
		if l != link {
			return appmodel.Settings{}, "", errors.New("not a qtunnel link")
		}
		return appmodel.Settings{
			Server: "vps.example.com:443", Transport: "tcp", Pin: "sha256:AAAA",
			Forwards: []appmodel.Forward{{Name: "ssh", Listen: "127.0.0.1:2222", Target: "ssh"}},
		}, "s3cret", nil
	}
	u, _ := newTestUI(t, c, Options{})
	u.ShowSettings()
	f := u.settings
	test.Tap(f.importBtn)
	if f.imp == nil {
		t.Fatal("no import dialog")
	}

	test.Type(f.imp.entry, "http://nope")
	test.Tap(f.imp.ok)
	if !f.imp.err.Visible() || !strings.Contains(f.imp.err.Text, "not a qtunnel link") {
		t.Errorf("import error %q", f.imp.err.Text)
	}

	f.imp.entry.SetText("")
	test.Type(f.imp.entry, link+"\n")
	test.Tap(f.imp.ok)
	if got := c.imports[len(c.imports)-1]; got != link {
		t.Errorf("Import got %q", got)
	}
	if f.server.Text != "vps.example.com:443" || f.transport.Selected != "tcp" || f.pin.Text != "sha256:AAAA" ||
		f.ca.Selected != caNone || f.secret.Text != "s3cret" {
		t.Errorf("form after import: server %q transport %q pin %q ca %q secret %q",
			f.server.Text, f.transport.Selected, f.pin.Text, f.ca.Selected, f.secret.Text)
	}
	if len(f.rows) != 1 || f.rows[0].listen.Text != "127.0.0.1:2222" || f.rows[0].target.Text != "ssh" {
		t.Errorf("forward rows after import: %d", len(f.rows))
	}
	if len(c.saved) != 0 {
		t.Error("import saved without Save")
	}
	test.Tap(f.save)
	if len(c.saved) != 1 || c.savedSecrets[0] != "s3cret" {
		t.Errorf("saved %v secrets %v", c.saved, c.savedSecrets)
	}
}

func TestFirstRunOpensSetup(t *testing.T) {
	c := newFake()
	c.firstRun = true
	c.validate = validateLikeModel
	u, app := newTestUI(t, c, Options{AppName: "QTunnel"})
	if u.setup == nil || !u.setup.shown {
		t.Fatal("setup not shown on first run")
	}
	found := false
	for _, w := range app.Driver().AllWindows() {
		found = found || w.Title() == "Set up QTunnel"
	}
	if !found {
		t.Error("no window titled \"Set up QTunnel\"")
	}
	markup := test.RenderToMarkup(u.setup.win.Canvas())
	for _, s := range []string{"Import a link", "Enter settings", "Welcome to QTunnel"} {
		if !strings.Contains(markup, s) {
			t.Errorf("setup window lacks %q", s)
		}
	}

	test.Tap(u.setup.enter)
	if u.setup.shown || u.settings == nil || !u.settings.shown {
		t.Fatal("Enter settings did not lead to the settings window")
	}
	// An untouched first-run form is not red all over.
	if u.settings.errs["server"].Visible() {
		t.Errorf("error shown on an untouched first-run form: %q", u.settings.errs["server"].Text)
	}

	u.settings.hide()
	u.ShowSetup()
	test.Tap(u.setup.importBtn)
	if !u.settings.shown || u.settings.imp == nil {
		t.Error("Import a link did not open the import dialog")
	}
}

func TestNoSetupAfterFirstRun(t *testing.T) {
	u, _ := newTestUI(t, newFake(), Options{})
	if u.setup != nil {
		t.Error("setup opened though settings are saved")
	}
}

func TestCloseUnsubscribes(t *testing.T) {
	c := newFake()
	u, _ := newTestUI(t, c, Options{})
	u.Close()
	if len(c.subs) != 0 {
		t.Errorf("%d subscriptions left after Close", len(c.subs))
	}
	if u.ctx.Err() == nil {
		t.Error("context not cancelled by Close")
	}
}

// TestSettingsWindowRenders draws the settings window with the test
// driver's software painter, to show it renders without a display.
func TestSettingsWindowRenders(t *testing.T) {
	c := newFake()
	c.hasSecret = true
	c.validate = validateLikeModel
	c.settings = appmodel.Settings{Server: "vps.example.com", Transport: "quic", Pin: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Forwards: []appmodel.Forward{
		{Name: "ssh", Listen: "127.0.0.1:2222", Target: "ssh"},
		{Name: "db", Listen: "5432", Target: "db"},
	}}
	u, _ := newTestUI(t, c, Options{})
	u.ShowSettings()
	img := u.settings.win.Canvas().Capture()
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 300 {
		t.Fatalf("captured %v", b)
	}
	path := filepath.Join(t.TempDir(), "settings.png")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(out, img); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	markup := test.RenderToMarkup(u.settings.win.Canvas())
	for _, s := range []string{"Write the server as host:port", "Listen on: Write a local address", "Import link…", "Save"} {
		if !strings.Contains(markup, s) {
			t.Errorf("rendered settings lack %q", s)
		}
	}
	t.Logf("settings window rendered to %s", path)
}

func equalSettings(a, b appmodel.Settings) bool {
	if a.Server != b.Server || a.Transport != b.Transport || a.Pin != b.Pin || a.CA != b.CA || len(a.Forwards) != len(b.Forwards) {
		return false
	}
	for i := range a.Forwards {
		if a.Forwards[i] != b.Forwards[i] {
			return false
		}
	}
	return true
}
