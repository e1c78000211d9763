package ui

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/qtunnel/qtunnel/client-gui/internal/appmodel"
)

// Choices of the CA select, and the Settings.CA value each stands for
// (a file stands for its path).
const (
	caNone   = "None (trust by pin or secret)"
	caSystem = "System certificates"
	caFile   = "A PEM file"
)

// maxLinkFile bounds what "From file…" reads: a share link is a line.
const maxLinkFile = 64 << 10

// settingsForm is the settings window. It is built once and hidden, not
// closed, so that reopening it is cheap and the tray keeps the app alive.
type settingsForm struct {
	u     *UI
	win   fyne.Window
	shown bool

	server, pin, caPath, secret *widget.Entry
	transport, ca               *widget.Select
	caFileRow                   *fyne.Container
	rows                        []*forwardRow
	rowsBox                     *fyne.Container
	// errs are the inline error labels by field name; "" is the
	// general one for fields the form has no place for.
	errs                 map[string]*widget.Label
	save, add, importBtn *widget.Button

	// touched fields show their errors as the user types; showAll (after
	// Save, an import, or when editing saved settings) shows every error,
	// so that an empty first-run form is not red before it is touched.
	touched map[string]bool
	showAll bool
	// filling is set while the form is loaded, when the widgets' change
	// callbacks must not count as edits.
	filling bool

	imp *importDialog
}

// forwardRow is one forward being edited.
type forwardRow struct {
	name, listen, target *widget.Entry
	err                  *widget.Label
	box                  fyne.CanvasObject
	touched              map[string]bool
}

// importDialog reads a share link pasted or from a file.
type importDialog struct {
	d                *dialog.CustomDialog
	entry            *widget.Entry
	err              *widget.Label
	ok, file, cancel *widget.Button
}

// ShowSettings opens the settings window with the saved settings, or
// brings it forward, keeping the edits, if it is already open.
func (u *UI) ShowSettings() {
	if u.settings == nil {
		u.settings = u.newSettingsForm()
	}
	f := u.settings
	if f.shown {
		f.win.RequestFocus()
		return
	}
	f.load()
	f.shown = true
	f.win.Show()
}

func (u *UI) newSettingsForm() *settingsForm {
	f := &settingsForm{
		u:       u,
		win:     u.app.NewWindow(u.opts.AppName + " settings"),
		errs:    make(map[string]*widget.Label),
		touched: make(map[string]bool),
	}
	f.win.SetCloseIntercept(f.hide)

	f.server = f.entry("server", "vps.example.com:443")
	f.transport = widget.NewSelect([]string{"quic", "tcp"}, f.changed("transport"))
	f.pin = f.entry("pin", "sha256:… (from the server's share link)")
	f.ca = widget.NewSelect([]string{caNone, caSystem, caFile}, func(string) {
		f.showCAFile()
		f.changed("ca")("")
	})
	f.caPath = f.entry("ca", "/path/to/ca.pem")
	browse := widget.NewButtonWithIcon("Browse…", theme.FolderOpenIcon(), f.browseCA)
	f.caFileRow = container.NewBorder(nil, nil, nil, browse, f.caPath)
	f.secret = widget.NewPasswordEntry()
	f.secret.OnChanged = f.changed("secret")
	for _, k := range []string{"", "server", "transport", "pin", "ca", "secret", "forwards"} {
		f.errs[k] = errorLabel()
	}

	form := container.New(layout.NewFormLayout(),
		widget.NewLabel("Server"), f.withError(f.server, "server"),
		widget.NewLabel("Transport"), f.withError(f.transport, "transport"),
		widget.NewLabel("Certificate pin"), f.withError(f.pin, "pin"),
		widget.NewLabel("CA certificates"), f.withError(container.NewVBox(f.ca, f.caFileRow), "ca"),
		widget.NewLabel("Secret"), f.withError(f.secret, "secret"),
	)

	f.rowsBox = container.NewVBox()
	f.add = widget.NewButtonWithIcon("Add forward", theme.ContentAddIcon(), func() {
		f.addRow(appmodel.Forward{})
		f.touched["forwards"] = true
		f.validate()
	})
	heads := container.NewBorder(nil, nil, nil, widget.NewIcon(nil), container.NewGridWithColumns(3,
		widget.NewLabelWithStyle("Name", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		widget.NewLabelWithStyle("Listen on", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		widget.NewLabelWithStyle("Target", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
	))
	forwards := container.NewVBox(
		widget.NewLabelWithStyle("Forwards: local ports carried to the server", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		heads, f.rowsBox, f.errs["forwards"],
		container.NewHBox(f.add),
	)

	f.save = widget.NewButtonWithIcon("Save", theme.DocumentSaveIcon(), f.doSave)
	f.save.Importance = widget.HighImportance
	f.importBtn = widget.NewButtonWithIcon("Import link…", theme.DownloadIcon(), f.showImport)
	buttons := container.NewHBox(
		f.importBtn,
		layout.NewSpacer(),
		widget.NewButton("Cancel", f.hide),
		f.save,
	)
	body := container.NewVScroll(container.NewVBox(form, widget.NewSeparator(), forwards))
	f.win.SetContent(container.NewBorder(nil, container.NewVBox(f.errs[""], buttons), nil, nil, body))
	f.win.Resize(fyne.NewSize(760, 560))
	return f
}

// entry makes an entry whose edits count for field.
func (f *settingsForm) entry(field, placeholder string) *widget.Entry {
	e := widget.NewEntry()
	e.SetPlaceHolder(placeholder)
	e.OnChanged = f.changed(field)
	return e
}

// changed is the change callback of field's widget.
func (f *settingsForm) changed(field string) func(string) {
	return func(string) {
		if f.filling {
			return
		}
		f.touched[field] = true
		f.validate()
	}
}

// withError stacks o over its field's error label.
func (f *settingsForm) withError(o fyne.CanvasObject, field string) fyne.CanvasObject {
	return container.NewVBox(o, f.errs[field])
}

// errorLabel is an inline error: red, wrapped, hidden while empty (a
// hidden object takes no room in a VBox).
func errorLabel() *widget.Label {
	l := widget.NewLabel("")
	l.Importance = widget.DangerImportance
	l.Wrapping = fyne.TextWrapWord
	l.Hide()
	return l
}

// setError shows msgs in l, and says whether l appeared or went away.
func setError(l *widget.Label, msgs []string) (moved bool) {
	l.SetText(strings.Join(msgs, "\n"))
	was := l.Visible()
	if len(msgs) == 0 {
		l.Hide()
	} else {
		l.Show()
	}
	return was != l.Visible()
}

// load fills the form from the saved settings. Saved settings were valid
// when saved, so their errors (if the rules changed) show at once; a
// first-run form shows errors only as fields are touched.
func (f *settingsForm) load() {
	c := f.u.c
	if c.HasSecret() {
		f.secret.SetPlaceHolder("stored in the keyring (empty keeps it)")
	} else {
		f.secret.SetPlaceHolder("the shared secret from the server")
	}
	f.fill(c.Settings(), "", !c.FirstRun())
}

// fill shows s and secret, forgetting the edits.
func (f *settingsForm) fill(s appmodel.Settings, secret string, showAll bool) {
	f.filling = true
	f.server.SetText(s.Server)
	tr := s.Transport
	if tr != "quic" && tr != "tcp" {
		tr = "tcp" // what the engine takes "" for
	}
	f.transport.SetSelected(tr)
	f.pin.SetText(s.Pin)
	switch s.CA {
	case "":
		f.ca.SetSelected(caNone)
		f.caPath.SetText("")
	case "system":
		f.ca.SetSelected(caSystem)
		f.caPath.SetText("")
	default:
		f.ca.SetSelected(caFile)
		f.caPath.SetText(s.CA)
	}
	f.showCAFile()
	f.secret.SetText(secret)
	f.rows = nil
	f.rowsBox.RemoveAll()
	for _, fw := range s.Forwards {
		f.addRow(fw)
	}
	f.filling = false

	f.touched = make(map[string]bool)
	f.showAll = showAll
	f.validate()
}

func (f *settingsForm) showCAFile() {
	if f.ca.Selected == caFile {
		f.caFileRow.Show()
	} else {
		f.caFileRow.Hide()
	}
	f.relayout()
}

// addRow appends a forward row; its fields report as forwards[i].x with
// i its index at the time of the check, so removing a row renumbers.
func (f *settingsForm) addRow(fw appmodel.Forward) {
	r := &forwardRow{err: errorLabel(), touched: make(map[string]bool)}
	mk := func(sub, text, placeholder string) *widget.Entry {
		e := widget.NewEntry()
		e.SetPlaceHolder(placeholder)
		e.SetText(text)
		e.OnChanged = func(string) {
			if f.filling {
				return
			}
			r.touched[sub] = true
			f.validate()
		}
		return e
	}
	r.name = mk("name", fw.Name, "ssh")
	r.listen = mk("listen", fw.Listen, "127.0.0.1:2222")
	r.target = mk("target", fw.Target, "ssh or host:22")
	remove := widget.NewButtonWithIcon("", theme.DeleteIcon(), func() { f.removeRow(r) })
	r.box = container.NewVBox(
		container.NewBorder(nil, nil, nil, remove, container.NewGridWithColumns(3, r.name, r.listen, r.target)),
		r.err,
	)
	f.rows = append(f.rows, r)
	f.rowsBox.Add(r.box)
	f.relayout()
}

func (f *settingsForm) removeRow(r *forwardRow) {
	for i, x := range f.rows {
		if x == r {
			f.rows = append(f.rows[:i:i], f.rows[i+1:]...)
			break
		}
	}
	f.rowsBox.Remove(r.box)
	f.relayout()
	f.touched["forwards"] = true
	f.validate()
}

// current is the form as Settings.
func (f *settingsForm) current() appmodel.Settings {
	s := appmodel.Settings{
		Server:    strings.TrimSpace(f.server.Text),
		Transport: f.transport.Selected,
		Pin:       strings.TrimSpace(f.pin.Text),
	}
	switch f.ca.Selected {
	case caSystem:
		s.CA = "system"
	case caFile:
		s.CA = strings.TrimSpace(f.caPath.Text)
	}
	for _, r := range f.rows {
		s.Forwards = append(s.Forwards, appmodel.Forward{
			Name:   strings.TrimSpace(r.name.Text),
			Listen: strings.TrimSpace(r.listen.Text),
			Target: strings.TrimSpace(r.target.Text),
		})
	}
	return s
}

// validate asks the controller about the form as it is and shows the
// answer next to the fields.
func (f *settingsForm) validate() []appmodel.FieldError {
	errs := f.u.c.Validate(f.current(), f.secret.Text)
	f.showErrors(errs)
	return errs
}

// showErrors puts each error under its field: a forward's under its row,
// one the form has no place for in the general label at the bottom.
func (f *settingsForm) showErrors(errs []appmodel.FieldError) {
	byField := make(map[string][]string)
	byRow := make(map[int][]string)
	for _, e := range errs {
		if i, sub, ok := forwardField(e.Field); ok && i < len(f.rows) {
			r := f.rows[i]
			if !f.showAll && !r.touched[sub] && (sub != "" || len(r.touched) == 0) {
				continue
			}
			msg := e.Msg
			if sub != "" {
				msg = subLabel(sub) + ": " + msg
			}
			byRow[i] = append(byRow[i], msg)
			continue
		}
		if _, ok := f.errs[e.Field]; ok && e.Field != "" {
			if f.showAll || f.touched[e.Field] {
				byField[e.Field] = append(byField[e.Field], e.Msg)
			}
			continue
		}
		if f.showAll {
			byField[""] = append(byField[""], e.Error())
		}
	}
	moved := false
	for k, l := range f.errs {
		moved = setError(l, byField[k]) || moved
	}
	for i, r := range f.rows {
		moved = setError(r.err, byRow[i]) || moved
	}
	if moved {
		f.relayout()
	}
}

// relayout lays the window out again after a part appeared or went away
// (an error label, the CA file row, a forward row): that changes the
// height of its box, and the test driver, unlike the desktop one, does
// not notice by itself.
func (f *settingsForm) relayout() {
	if c := f.win.Content(); c != nil {
		c.Refresh()
	}
}

// forwardField splits "forwards[2].listen" into 2 and "listen";
// "forwards[2]" gives sub "".
func forwardField(field string) (i int, sub string, ok bool) {
	rest, found := strings.CutPrefix(field, "forwards[")
	if !found {
		return 0, "", false
	}
	idx, rest, found := strings.Cut(rest, "]")
	if !found {
		return 0, "", false
	}
	i, err := strconv.Atoi(idx)
	if err != nil || i < 0 {
		return 0, "", false
	}
	return i, strings.TrimPrefix(rest, "."), true
}

func subLabel(sub string) string {
	switch sub {
	case "name":
		return "Name"
	case "listen":
		return "Listen on"
	case "target":
		return "Target"
	}
	return sub
}

// doSave checks the form and, if the controller finds nothing wrong,
// saves it off the Fyne goroutine; the window closes once saved.
func (f *settingsForm) doSave() {
	s, secret := f.current(), f.secret.Text
	f.showAll = true
	if errs := f.validate(); len(errs) > 0 {
		return
	}
	f.save.Disable()
	var ferrs []appmodel.FieldError
	f.u.run(func(ctx context.Context) error {
		var err error
		ferrs, err = f.u.c.Save(ctx, s, secret)
		return err
	}, func(err error) {
		f.save.Enable()
		switch {
		case len(ferrs) > 0:
			f.showErrors(ferrs)
		case err != nil:
			dialog.ShowInformation("Settings not saved",
				"The settings could not be saved:\n"+err.Error(), f.win)
		default:
			f.hide()
		}
	})
}

// hide hides the window (Cancel and the close button alike): the app
// goes on in the tray, and the next ShowSettings reloads the form.
func (f *settingsForm) hide() {
	f.shown = false
	f.filling = true
	f.secret.SetText("") // do not keep a typed secret around
	f.filling = false
	f.win.Hide()
}

func (f *settingsForm) browseCA() {
	dialog.ShowFileOpen(func(r fyne.URIReadCloser, err error) {
		if err != nil || r == nil {
			return
		}
		_ = r.Close()
		f.caPath.SetText(r.URI().Path())
	}, f.win)
}

// showImport opens the import dialog over the settings window.
func (f *settingsForm) showImport() {
	if f.imp == nil {
		f.imp = f.newImportDialog()
	}
	f.imp.entry.SetText("")
	setError(f.imp.err, nil)
	f.imp.d.Show()
	f.win.Canvas().Focus(f.imp.entry)
}

func (f *settingsForm) newImportDialog() *importDialog {
	d := &importDialog{entry: widget.NewMultiLineEntry(), err: errorLabel()}
	d.entry.SetPlaceHolder("qtunnel://…")
	d.entry.Wrapping = fyne.TextWrapBreak
	d.entry.SetMinRowsVisible(3)
	d.ok = widget.NewButton("Import", func() { f.importLink(d.entry.Text) })
	d.ok.Importance = widget.HighImportance
	d.file = widget.NewButtonWithIcon("From file…", theme.FolderOpenIcon(), f.importFile)
	d.cancel = widget.NewButton("Cancel", func() { d.d.Hide() })
	content := container.NewVBox(
		widget.NewLabel("Paste the link the server's admin gave you, or read it from a file.\nThe form is filled in; nothing is saved until you press Save."),
		d.entry, d.err,
	)
	d.d = dialog.NewCustomWithoutButtons("Import a link", content, f.win)
	d.d.SetButtons([]fyne.CanvasObject{d.file, d.cancel, d.ok})
	d.d.Resize(fyne.NewSize(560, 260))
	return d
}

// importLink fills the form from a share link, or says why it cannot.
func (f *settingsForm) importLink(link string) {
	link = strings.TrimSpace(link)
	if link == "" {
		setError(f.imp.err, []string{"Paste a qtunnel:// link first."})
		return
	}
	s, secret, err := f.u.c.Import(link)
	if err != nil {
		setError(f.imp.err, []string{"This link cannot be used: " + err.Error()})
		return
	}
	f.imp.d.Hide()
	// Show all problems at once: the user did not type these fields.
	f.fill(s, secret, true)
}

func (f *settingsForm) importFile() {
	dialog.ShowFileOpen(func(r fyne.URIReadCloser, err error) {
		if err != nil {
			setError(f.imp.err, []string{"The file cannot be opened: " + err.Error()})
			return
		}
		if r == nil {
			return // cancelled
		}
		defer r.Close()
		b, err := io.ReadAll(io.LimitReader(r, maxLinkFile))
		if err != nil {
			setError(f.imp.err, []string{fmt.Sprintf("The file cannot be read: %v", err)})
			return
		}
		f.imp.entry.SetText(strings.TrimSpace(string(b)))
		f.importLink(f.imp.entry.Text)
	}, f.win)
}
