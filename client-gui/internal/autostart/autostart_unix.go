//go:build !windows

package autostart

import (
	"os"
	"path/filepath"
	"runtime"
)

// path is where the entry file lives.
func path(e Entry) string {
	dir := e.Dir
	if runtime.GOOS == "darwin" {
		if dir == "" {
			home, _ := os.UserHomeDir()
			dir = filepath.Join(home, "Library", "LaunchAgents")
		}
		return filepath.Join(dir, "io."+e.Name+".plist")
	}
	if dir == "" {
		cfg, _ := os.UserConfigDir()
		dir = filepath.Join(cfg, "autostart")
	}
	return filepath.Join(dir, e.Name+".desktop")
}

func text(e Entry) string {
	if runtime.GOOS == "darwin" {
		return launchAgent(e)
	}
	return desktopFile(e)
}

func enabled(e Entry) bool  { return exists(path(e)) }
func install(e Entry) error { return writeFile(path(e), text(e)) }
func remove(e Entry) error  { return removeFile(path(e)) }
