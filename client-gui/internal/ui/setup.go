package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// setupWindow is the first-run setup: two lines of explanation and the
// two ways to get settings, both leading to the settings window.
type setupWindow struct {
	win              fyne.Window
	shown            bool
	importBtn, enter *widget.Button
}

// ShowSetup opens the first-run setup window (Start does when the
// controller says nothing is saved yet).
func (u *UI) ShowSetup() {
	if u.setup == nil {
		u.setup = u.newSetupWindow()
	}
	u.setup.shown = true
	u.setup.win.Show()
	u.setup.win.RequestFocus()
}

func (u *UI) newSetupWindow() *setupWindow {
	s := &setupWindow{win: u.app.NewWindow("Set up " + u.opts.AppName)}
	s.win.SetCloseIntercept(s.hide)
	s.importBtn = widget.NewButtonWithIcon("Import a link", theme.DownloadIcon(), func() {
		s.hide()
		u.ShowSettings()
		u.settings.showImport()
	})
	s.importBtn.Importance = widget.HighImportance
	s.enter = widget.NewButtonWithIcon("Enter settings", theme.SettingsIcon(), func() {
		s.hide()
		u.ShowSettings()
	})
	title := widget.NewLabelWithStyle("Welcome to "+u.opts.AppName, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	text := widget.NewLabel(u.opts.AppName + " carries your local ports to a server over one encrypted connection.\n" +
		"To start, import the link your server's admin gave you, or enter the settings yourself.")
	content := container.NewVBox(
		title, text,
		container.NewHBox(layout.NewSpacer(), s.enter, s.importBtn),
	)
	s.win.SetContent(content)
	// The two lines are not wrapped, so the content's own size fits them.
	s.win.Resize(content.MinSize())
	return s
}

func (s *setupWindow) hide() {
	s.shown = false
	s.win.Hide()
}
