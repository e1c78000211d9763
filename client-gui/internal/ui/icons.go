package ui

import (
	"fyne.io/fyne/v2"

	"github.com/qtunnel/qtunnel/assets"
	"github.com/qtunnel/qtunnel/client-gui/internal/appmodel"
)

// trayIcons makes one resource per state. Each has its own name
// ("tray-on.png") because Fyne caches images by resource name, and a
// shared name would keep showing the first icon.
func trayIcons() map[appmodel.State]fyne.Resource {
	m := make(map[appmodel.State]fyne.Resource)
	for _, s := range []appmodel.State{appmodel.StateOff, appmodel.StateConnecting, appmodel.StateOn, appmodel.StateError} {
		m[s] = fyne.NewStaticResource("tray-"+string(s)+".png", iconFor(s))
	}
	return m
}

// iconFor is the tray icon of a state. The colour icons are used on every
// system: the macOS template variants would need a ThemedResource, which
// Fyne only makes from SVG.
func iconFor(s appmodel.State) []byte {
	return assets.TrayIcon(string(s))
}

func appIcon() fyne.Resource {
	return fyne.NewStaticResource("qtunnel.png", assets.AppIcon())
}
