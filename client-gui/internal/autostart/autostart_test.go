//go:build !windows && !darwin

package autostart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDesktopEntry(t *testing.T) {
	e := Entry{Name: "qtunnel", Label: "QTunnel", Executable: "/opt/Q Tunnel/qtunnel-gui", Args: []string{"-tray"}, Dir: t.TempDir()}
	if e.Enabled() {
		t.Fatal("enabled before Set")
	}
	if err := e.Set(true); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(e.Dir, "qtunnel.desktop"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[Desktop Entry]", "Type=Application", "Name=QTunnel", `Exec="/opt/Q Tunnel/qtunnel-gui" -tray`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("entry lacks %q:\n%s", want, b)
		}
	}
	if !e.Enabled() {
		t.Error("not enabled after Set(true)")
	}
	if err := e.Set(false); err != nil {
		t.Fatal(err)
	}
	if e.Enabled() {
		t.Error("still enabled after Set(false)")
	}
	if err := e.Set(false); err != nil {
		t.Errorf("removing twice: %v", err)
	}
}

func TestLaunchAgentText(t *testing.T) {
	got := launchAgent(Entry{Name: "qtunnel", Executable: "/Applications/QTunnel.app/Contents/MacOS/qtunnel-gui", Args: []string{"-tray", "a&b"}})
	for _, want := range []string{"<key>Label</key>\n\t<string>io.qtunnel</string>", "<string>/Applications/QTunnel.app/Contents/MacOS/qtunnel-gui</string>",
		"<string>a&amp;b</string>", "<key>RunAtLoad</key>\n\t<true/>"} {
		if !strings.Contains(got, want) {
			t.Errorf("plist lacks %q:\n%s", want, got)
		}
	}
}

func TestQuoteExec(t *testing.T) {
	for in, want := range map[string]string{"plain": "plain", "a b": `"a b"`, `a"b`: `"a\"b"`, "$HOME": `"\$HOME"`, "": `""`} {
		if got := quoteExec(in); got != want {
			t.Errorf("quoteExec(%q) = %s, want %s", in, got, want)
		}
	}
}
