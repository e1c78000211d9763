package ui

import (
	"context"
	"fmt"
	"strings"

	"fyne.io/fyne/v2"

	"github.com/qtunnel/qtunnel/client-gui/internal/appmodel"
)

// Menu labels that depend on the state; tests find items by them.
const (
	labelConnect       = "Connect"
	labelDisconnect    = "Disconnect"
	labelInstall       = "Install background service"
	labelRemove        = "Remove background service"
	labelStartAtLogin  = "Start at login"
	labelSettings      = "Settings…"
	labelOpenLogs      = "Open logs"
	labelCopyDetails   = "Copy details"
	labelQuit          = "Quit"
	problemLabelPrefix = "Problem: "
)

// trayItems are the menu's items. They are kept across renders so that a
// reference held by the desktop driver or a test stays valid; updateMenu
// changes their labels and flags and which of them are in the menu.
type trayItems struct {
	status, problem, copyDetails         *fyne.MenuItem
	toggle, settings, service, autostart *fyne.MenuItem
	logs, quit                           *fyne.MenuItem
}

func (u *UI) buildMenu() {
	it := &u.items
	it.status = &fyne.MenuItem{Disabled: true}
	// The problem line is information, not an action.
	it.problem = &fyne.MenuItem{Disabled: true}
	it.copyDetails = fyne.NewMenuItem(labelCopyDetails, u.copyDetails)
	it.toggle = fyne.NewMenuItem(labelConnect, u.toggle)
	it.settings = fyne.NewMenuItem(labelSettings, u.ShowSettings)
	it.service = fyne.NewMenuItem(labelInstall, u.toggleService)
	it.autostart = fyne.NewMenuItem(labelStartAtLogin, u.toggleStartAtLogin)
	it.logs = fyne.NewMenuItem(labelOpenLogs, u.openLogs)
	it.quit = fyne.NewMenuItem(labelQuit, u.app.Quit)
	it.quit.IsQuit = true
	u.menu = fyne.NewMenu(u.opts.AppName)
}

// updateMenu sets the items from the view; render pushes them to the tray.
func (u *UI) updateMenu() {
	v, it := u.view, &u.items

	it.status.Label = statusLine(v)

	if v.State == appmodel.StateOff {
		it.toggle.Label = labelConnect
	} else {
		// Toggle disconnects in every other state (see Controller), so
		// that is what the item says, also while still connecting.
		it.toggle.Label = labelDisconnect
	}
	it.toggle.Disabled = u.toggling

	if v.ServiceInstalled {
		it.service.Label = labelRemove
	} else {
		it.service.Label = labelInstall
	}
	it.service.Disabled = u.serviceBusy
	it.autostart.Checked = v.StartAtLogin

	items := []*fyne.MenuItem{it.status}
	if p := u.problem(); p != "" {
		it.problem.Label = problemLabelPrefix + p
		items = append(items, it.problem, it.copyDetails)
	}
	items = append(items,
		fyne.NewMenuItemSeparator(),
		it.toggle,
		fyne.NewMenuItemSeparator(),
		it.settings,
		it.service,
		it.autostart,
		it.logs,
		fyne.NewMenuItemSeparator(),
		it.quit,
	)
	u.menu.Items = items
}

// menuKey is what the native menu shows of m, to tell whether it changed.
func menuKey(m *fyne.Menu) string {
	var b strings.Builder
	for _, it := range m.Items {
		fmt.Fprintf(&b, "%q %t %t %t\n", it.Label, it.IsSeparator, it.Disabled, it.Checked)
	}
	return b.String()
}

// problem is the problem the menu shows: the view's, else the last failed
// menu action's.
func (u *UI) problem() string {
	if u.view.Error != "" {
		return u.view.Error
	}
	return u.actionErr
}

// statusLine is the view's status line, or the state in words when the
// controller gave none.
func statusLine(v appmodel.View) string {
	if s := strings.TrimSpace(v.StatusLine); s != "" {
		return s
	}
	switch v.State {
	case appmodel.StateOff:
		return "Not connected"
	case appmodel.StateConnecting:
		return "Connecting…"
	case appmodel.StateOn:
		return "Connected"
	default:
		return "Not working"
	}
}

func (u *UI) toggle() {
	if u.toggling {
		return
	}
	u.toggling = true
	u.actionErr = ""
	u.render()
	u.run(u.c.Toggle, func(err error) {
		u.toggling = false
		u.setActionErr(err)
	})
}

func (u *UI) toggleService() {
	if u.serviceBusy {
		return
	}
	f := u.c.InstallService
	if u.view.ServiceInstalled {
		f = u.c.RemoveService
	}
	u.serviceBusy = true
	u.actionErr = ""
	u.render()
	u.run(f, func(err error) {
		u.serviceBusy = false
		u.setActionErr(err)
	})
}

func (u *UI) toggleStartAtLogin() {
	on := !u.view.StartAtLogin
	u.actionErr = ""
	u.run(func(context.Context) error { return u.c.SetStartAtLogin(on) }, func(err error) {
		if err == nil {
			// Show the new state now; the controller's next view has
			// the last word.
			u.view.StartAtLogin = on
		}
		u.setActionErr(err)
	})
}

func (u *UI) openLogs() {
	u.actionErr = ""
	u.setActionErr(u.opts.OpenURL(logURL(u.c.LogPath())))
}

// copyDetails puts the view's details (or at least the problem) on the
// clipboard, for a bug report.
func (u *UI) copyDetails() {
	d := u.view.Details
	if d == "" {
		d = u.problem()
	}
	u.app.Clipboard().SetContent(d)
}

// setActionErr shows err (nil clears it) and re-renders.
func (u *UI) setActionErr(err error) {
	if err != nil {
		u.actionErr = err.Error()
	}
	u.render()
}
