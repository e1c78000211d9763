//go:build linux || freebsd || openbsd || netbsd || dragonfly

package secretstore

import (
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"
)

// sessionCheck fails, without calling go-keyring, when this session has
// no D-Bus session bus at all. go-keyring (through godbus) would
// otherwise run dbus-launch, which starts a stray bus daemon that outlives
// the process and has no unlocked keyring on it anyway.
func sessionCheck() error {
	if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" && a != "autolaunch:" {
		return nil
	}
	// godbus also looks for the bus of the user's login session here.
	run := fmt.Sprintf("/run/user/%d/", os.Getuid())
	for _, f := range []string{run + "bus", run + "dbus-session"} {
		if _, err := os.Stat(f); err == nil {
			return nil
		}
	}
	return &unavailableError{
		reason: "no Secret Service on this session: there is no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)",
		err:    errors.New("no D-Bus session bus"),
	}
}

// D-Bus error names that mean nobody provides the Secret Service.
var noServiceNames = map[string]bool{
	"org.freedesktop.DBus.Error.ServiceUnknown":    true,
	"org.freedesktop.DBus.Error.NameHasNoOwner":    true,
	"org.freedesktop.DBus.Error.Spawn.ChildExited": true,
	"org.freedesktop.DBus.Error.Spawn.ExecFailed":  true,
	"org.freedesktop.DBus.Error.UnknownObject":     true,
	"org.freedesktop.DBus.Error.UnknownMethod":     true,
}

// classifyPlatform explains a Secret Service failure. All count as
// unavailable, a locked keyring that could not be unlocked included: on a
// headless session gnome-keyring is started on demand with no unlocked
// login keyring, and nobody can answer its prompt.
func classifyPlatform(err error) error {
	name := dbusErrorName(err)
	var op *net.OpError
	switch {
	case noServiceNames[name]:
		return &unavailableError{reason: "no Secret Service on this session (is gnome-keyring or KWallet running?)", err: err}
	case errors.As(err, &op), strings.HasPrefix(err.Error(), "dbus: "):
		return &unavailableError{reason: "no Secret Service on this session: the D-Bus session bus cannot be reached", err: err, detail: true}
	case name == "org.freedesktop.Secret.Error.IsLocked", strings.Contains(err.Error(), "failed to unlock"):
		return &unavailableError{reason: "the keyring is locked and could not be unlocked (this session cannot show a password prompt, or it was dismissed)", err: err, detail: true}
	case name == "org.freedesktop.DBus.Error.NoReply", name == "org.freedesktop.DBus.Error.Timeout":
		return &unavailableError{reason: "the Secret Service does not answer", err: err, detail: true}
	}
	return &unavailableError{reason: "the Secret Service failed", err: err, detail: true}
}

// dbusErrorName returns the D-Bus error name carried by err ("" if none).
// It looks at godbus's Error type by reflection so as not to import godbus,
// which this module only has through go-keyring.
func dbusErrorName(err error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		v := reflect.ValueOf(e)
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				continue
			}
			v = v.Elem()
		}
		t := v.Type()
		if v.Kind() == reflect.Struct && t.Name() == "Error" && strings.HasPrefix(t.PkgPath(), "github.com/godbus/dbus") {
			if f := v.FieldByName("Name"); f.Kind() == reflect.String {
				return f.String()
			}
		}
	}
	return ""
}
