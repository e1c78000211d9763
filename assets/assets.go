// Package assets holds the icons of the desktop client, embedded.
//
// The images under icons/ are made by make-icons.sh (ImageMagick) and
// committed; rerun the script to regenerate them all. Each function
// returns a new copy of the PNG bytes.
package assets

import "embed"

//go:embed icons/*.png
var icons embed.FS

// Tray states that have their own icon. Any other state gets the StateOff
// icon.
const (
	StateOff        = "off"
	StateConnecting = "connecting"
	StateOn         = "on"
	StateError      = "error"
)

// Sizes of the images, in pixels (they are square).
const (
	TrayIconSize         = 64
	TrayIconTemplateSize = 32 // 16x16 points, which is how the macOS systray of Fyne shows it, at @2x
	AppIconSize          = 512
)

// TrayIcon returns the colour tray icon for state ("off", "connecting",
// "on" or "error"), a 64x64 PNG: grey with a slash, amber with a ring,
// green with a dot, red with a cross. An unknown state gets the "off" icon.
func TrayIcon(state string) []byte {
	return load("icons/tray-" + known(state) + ".png")
}

// TrayIconTemplate returns the macOS template variant of TrayIcon(state): a
// 32x32 PNG of black pixels with alpha only, the same shapes, for the menu
// bar to tint to its own appearance (light, dark, highlighted). An unknown
// state gets the "off" icon.
//
// With Fyne 2.7, the tray icon is set as a template only when the resource
// passed to SetSystemTrayIcon is a *theme.ThemedResource, e.g.
// theme.NewThemedResource(fyne.NewStaticResource("tray.png",
// TrayIconTemplate(s))); Fyne then logs that the content is not an SVG and
// uses the PNG as it is.
func TrayIconTemplate(state string) []byte {
	return load("icons/template-" + known(state) + ".png")
}

// AppIcon returns the application icon, a 512x512 PNG. The same image as a
// Windows .ico and a macOS .icns is in icons/ beside it, for the packagers.
func AppIcon() []byte {
	return load("icons/app.png")
}

func known(state string) string {
	switch state {
	case StateOff, StateConnecting, StateOn, StateError:
		return state
	}
	return StateOff
}

func load(name string) []byte {
	b, err := icons.ReadFile(name)
	if err != nil {
		panic("assets: " + err.Error()) // the files are embedded at build time
	}
	return b
}
