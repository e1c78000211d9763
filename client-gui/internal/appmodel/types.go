// Package appmodel is the desktop client's logic without a toolkit: the
// settings a user edits (checked field by field), the secret kept in the
// OS keyring, the background service, and the view of the tunnel that the
// tray and windows render, all driven through the engine's local control
// API. The Fyne UI (package ui) only draws it and forwards clicks.
package appmodel

import (
	"context"
	"time"
)

// State is what the tray icon shows.
type State string

// States.
const (
	StateOff        State = "off"        // not running, or stopped
	StateConnecting State = "connecting" // trying to reach the server
	StateOn         State = "on"         // connected
	StateError      State = "error"      // a problem retrying will not fix, or no engine to talk to
)

// View is everything the UI renders; a new one replaces the old whole.
type View struct {
	State State
	// StatusLine is one line for the tray menu: "vps.example.com:443 ·
	// 12 ms · ↑ 1.2 MiB/s ↓ 3.4 MiB/s", or what is happening.
	StatusLine string
	// Error is the last problem in plain words ("" if none); Details is
	// the full text for "copy details" (versions, state, errors).
	Error, Details string
	// ServiceInstalled says whether the background service is installed;
	// InProcess that the engine runs inside the app instead.
	ServiceInstalled, InProcess bool
	// StartAtLogin mirrors the autostart setting.
	StartAtLogin bool
	Updated      time.Time
}

// Forward is one local port and the target it reaches, as edited.
type Forward struct {
	Name, Listen, Target string
}

// Settings are what the settings window edits. The secret is not here:
// it goes to the keyring, never to the settings file.
type Settings struct {
	Server    string // host:port, or several comma-separated (the client fails over between them)
	Transport string // "quic" or "tcp"
	Pin       string // "sha256:…" or ""
	CA        string // "", "system" or a PEM file
	Forwards  []Forward
}

// FieldError is a problem with one field, shown next to it. Field names:
// "server", "transport", "pin", "ca", "secret", "forwards" (the list) and
// "forwards[i].listen", "forwards[i].target", "forwards[i].name".
type FieldError struct {
	Field, Msg string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Msg }

// Controller is what the UI drives. *Model implements it; UI unit tests
// may use a fake.
type Controller interface {
	// View returns the current view; OnChange calls fn (on any goroutine)
	// with each new one until the returned func is called.
	View() View
	OnChange(fn func(View)) (cancel func())
	// Toggle connects if off, disconnects otherwise.
	Toggle(ctx context.Context) error
	// Settings returns the saved settings; HasSecret whether a secret is
	// stored (the secret itself is never handed to the UI).
	Settings() Settings
	HasSecret() bool
	// Validate checks settings and a new secret ("" keeps the stored one)
	// without saving; Save checks and, if there is no FieldError, saves
	// them (the secret to the keyring) and applies them to the engine.
	Validate(s Settings, secret string) []FieldError
	Save(ctx context.Context, s Settings, secret string) ([]FieldError, error)
	// Import reads a qtunnel:// share link into settings and a secret,
	// for the settings window to show before the user saves.
	Import(link string) (Settings, string, error)
	// FirstRun says no settings are saved yet: the UI opens the setup.
	FirstRun() bool
	// The background service, and starting the app at login.
	InstallService(ctx context.Context) error
	RemoveService(ctx context.Context) error
	SetStartAtLogin(on bool) error
	// LogPath is the file "Open logs" opens.
	LogPath() string
}
