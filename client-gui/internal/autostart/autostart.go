// Package autostart starts the desktop app when the user logs in: an XDG
// autostart entry on Linux and other Unix desktops, a LaunchAgent on
// macOS, the Run key of the user's registry on Windows.
package autostart

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Entry is the app's autostart registration.
type Entry struct {
	// Name identifies the entry ("qtunnel" gives qtunnel.desktop,
	// io.qtunnel.plist...); Label is what a desktop shows.
	Name, Label string
	// Executable and Args are what runs at login.
	Executable string
	Args       []string
	// Dir is where the entry is written (default: the system's place for
	// the current user); tests set it.
	Dir string
}

// Enabled reports whether the entry is registered.
func (e Entry) Enabled() bool { return enabled(e) }

// Set registers or removes the entry.
func (e Entry) Set(on bool) error {
	if on {
		return install(e)
	}
	return remove(e)
}

// desktopFile is the XDG autostart entry's text.
func desktopFile(e Entry) string {
	quoted := []string{quoteExec(e.Executable)}
	for _, a := range e.Args {
		quoted = append(quoted, quoteExec(a))
	}
	return fmt.Sprintf("[Desktop Entry]\nType=Application\nName=%s\nExec=%s\nTerminal=false\nX-GNOME-Autostart-enabled=true\n",
		e.Label, strings.Join(quoted, " "))
}

// quoteExec quotes an argument for a desktop entry's Exec key, as the
// Desktop Entry Specification asks (double quotes; backslash before ", `, $ and \).
func quoteExec(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n\"'\\><~|&;$*?#()`") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", `$`, `\$`)
	return `"` + r.Replace(s) + `"`
}

// launchAgent is the macOS LaunchAgent's text.
func launchAgent(e Entry) string {
	var args strings.Builder
	for _, a := range append([]string{e.Executable}, e.Args...) {
		fmt.Fprintf(&args, "\t\t<string>%s</string>\n", xmlEscape(a))
	}
	return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>` + xmlEscape("io."+e.Name) + `</string>
	<key>ProgramArguments</key>
	<array>
` + args.String() + `	</array>
	<key>RunAtLoad</key>
	<true/>
</dict>
</plist>
`
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;").Replace(s)
}

// writeFile writes an entry file (creating its directory).
func writeFile(path, text string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("autostart: %w", err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("autostart: %w", err)
	}
	return nil
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("autostart: %w", err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
