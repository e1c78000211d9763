package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/qtunnel/qtunnel/core/config"
	"github.com/qtunnel/qtunnel/core/secret"
	"github.com/qtunnel/qtunnel/internal/svcinstall"
)

// -install-service, -uninstall-service and -service=ACTION: qtunnel as a
// system service on a host without the .deb or .rpm (package svcinstall).

// serviceActions are what -service=ACTION does.
var serviceActions = []string{"start", "stop", "restart", "status"}

// pathFlags are the flags that name a file or directory: the service runs
// from another directory, so they are made absolute. The values listed
// with each are words, not paths.
var pathFlags = map[string][]string{
	"config":      nil,
	"secret-file": nil,
	"cert-file":   nil,
	"key-file":    nil,
	"state-dir":   nil,
	"ca":          {"system"},
	"control":     {"off", "none"},
	"masquerade":  {"default", "off"},
}

// checkServiceFlags checks the service flags against the others. It
// returns done=true for -uninstall-service and -service=ACTION, which take
// no other flag and need no further check.
func (o *options) checkServiceFlags() (done bool, err error) {
	n := 0
	for _, b := range []bool{o.installService, o.uninstallService, o.serviceAction != ""} {
		if b {
			n++
		}
	}
	if n > 1 {
		return false, usagef("-install-service, -uninstall-service and -service go one at a time")
	}
	if err := svcinstall.CheckName(o.serviceName); err != nil {
		return false, usageError{"-service-name: " + err.Error()}
	}
	if n == 0 {
		if o.serviceName != svcinstall.DefaultName {
			return false, usagef("-service-name goes with -install-service, -uninstall-service or -service")
		}
		return false, nil
	}
	if o.serviceAction != "" && !containsString(serviceActions, o.serviceAction) {
		return false, usagef("-service=%s: want %s", o.serviceAction, strings.Join(serviceActions, ", "))
	}
	if o.generateSecret || o.generateCert || o.version || o.checkConfig != "" {
		return false, usagef("-install-service, -uninstall-service and -service do not go with -generate-secret, -generate-cert, -check-config or -version")
	}
	return !o.installService, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// serviceArgs are the arguments the installed service runs with: the flags
// given on the command line (fs, parsed), as -name=value, without the
// service flags, with relative paths made absolute from wd. A secret on
// the command line is refused: the service's definition and its process
// are readable by every user.
func serviceArgs(fs *flag.FlagSet, wd string) ([]string, error) {
	var args []string
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err != nil {
			return
		}
		switch f.Name {
		case "install-service", "service-name":
			return
		case "secret":
			err = usageError{"-install-service: " + svcinstall.ErrSecretArg.Error()}
			return
		}
		v := f.Value.String()
		if words, ok := pathFlags[f.Name]; ok && v != "" && !containsString(words, v) && !strings.Contains(v, "://") && !filepath.IsAbs(v) {
			v = filepath.Join(wd, v)
		}
		a := "-" + f.Name + "=" + v
		if e := svcinstall.CheckArg(a); e != nil {
			err = usageError{"-install-service: " + e.Error()}
			return
		}
		args = append(args, a)
	})
	return args, err
}

// installService is -install-service: it checks that the service would
// find its configuration and secret, then installs it (not started).
func installService(o *options, set map[string]bool, stdout, stderr io.Writer, getenv func(string) string) error {
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.Abs(exe)
	}
	if err != nil {
		return fmt.Errorf("-install-service: the path of this program: %w", err)
	}
	// What the service will run, in the environment it gets: none of
	// this shell's variables (QTUNNEL_SECRET, STATE_DIRECTORY, ...).
	cfg, err := buildConfig(o, set, func(string) string { return "" })
	if err != nil {
		return err
	}
	if len(cfg.SecretFiles) == 0 {
		if getenv(secret.EnvVar) != "" {
			return usagef("-install-service: the service does not get %s from this shell: give -secret-file=FILE or secret-file: in the configuration", secret.EnvVar)
		}
		return usagef("-install-service: the service needs the secret in a file: give -secret-file=FILE (make one with qtunnel -generate-secret -secret-file=FILE) or secret-file: in the configuration")
	}
	for _, f := range cfg.SecretFiles {
		if _, err := secret.FromFile(f); err != nil {
			return fmt.Errorf("-install-service: %w", err)
		}
	}
	description := "QTunnel server (TCP over an authenticated QUIC or TLS tunnel)"
	if cfg.Mode == config.ModeClient {
		description = "QTunnel client (TCP over an authenticated QUIC or TLS tunnel)"
	}
	m, err := svcinstall.New(svcinstall.Config{Name: o.serviceName, Description: description, Executable: exe, Args: o.serviceArgs})
	if err != nil {
		return fmt.Errorf("-install-service: %w", err)
	}
	if runtime.GOOS != "windows" && os.Geteuid() != 0 {
		return errors.New("-install-service: installing a system service needs root (sudo)")
	}
	if err := m.Install(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "installed the %s service (%s, %s), which starts at boot:\n  %s %s\n",
		o.serviceName, m.Platform(), m.DefinitionPath(), exe, strings.Join(o.serviceArgs, " "))
	if m.Platform() == svcinstall.PlatformSystemd {
		for _, w := range serviceWarnings(exe, o, cfg) {
			fmt.Fprintln(stderr, "qtunnel: warning: "+w)
		}
	}
	fmt.Fprintf(stdout, "start it now with: %s\n", serviceCommand(o.serviceName, "-service=start"))
	if m.Platform() == svcinstall.PlatformSystemV {
		logs := svcinstall.SysvLogFiles(o.serviceName)
		fmt.Fprintf(stdout, "its output goes to %s and %s\n", logs[0], logs[1])
	}
	return nil
}

// serviceWarnings are what the systemd unit's sandbox would keep the
// service from doing: reading a file root does not own (it has no
// CAP_DAC_OVERRIDE), writing its state under a home directory
// (ProtectHome=read-only).
func serviceWarnings(exe string, o *options, cfg *config.Config) []string {
	paths := []string{exe, o.configFile, cfg.CertFile, cfg.KeyFile}
	paths = append(paths, cfg.SecretFiles...)
	if cfg.Trust.CA != "" && cfg.Trust.CA != "system" {
		paths = append(paths, cfg.Trust.CA)
	}
	if fi, err := os.Stat(cfg.Masquerade); cfg.Masquerade != "" && err == nil && fi.IsDir() {
		paths = append(paths, cfg.Masquerade)
	}
	warnings := svcinstall.UnreadableByService(paths)
	for _, home := range []string{"/home/", "/root/", "/run/user/"} {
		if strings.HasPrefix(cfg.StateDir+"/", home) {
			warnings = append(warnings, fmt.Sprintf("the state directory %s is read-only for the service (ProtectHome=read-only): choose another -state-dir", cfg.StateDir))
		}
	}
	return warnings
}

func serviceCommand(name, flagText string) string {
	cmd := "qtunnel " + flagText
	if name != svcinstall.DefaultName {
		cmd += " -service-name=" + name
	}
	if runtime.GOOS != "windows" && os.Geteuid() != 0 {
		cmd = "sudo " + cmd
	}
	return cmd
}

// uninstallService is -uninstall-service: stop the service and remove it.
func uninstallService(o *options, stdout io.Writer) error {
	m, err := serviceManager(o.serviceName)
	if err != nil {
		return fmt.Errorf("-uninstall-service: %w", err)
	}
	if err := m.Uninstall(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed the %s service (%s)\n", o.serviceName, m.Platform())
	if m.Platform() == svcinstall.PlatformSystemV {
		logs := svcinstall.SysvLogFiles(o.serviceName)
		fmt.Fprintf(stdout, "its logs stay: %s and %s\n", logs[0], logs[1])
	}
	return nil
}

// serviceAction is -service=start|stop|restart|status.
func serviceAction(o *options, stdout io.Writer) error {
	m, err := serviceManager(o.serviceName)
	if err != nil {
		return fmt.Errorf("-service: %w", err)
	}
	switch o.serviceAction {
	case "start":
		err = m.Start()
	case "stop":
		err = m.Stop()
	case "restart":
		err = m.Restart()
	}
	if err != nil {
		return err
	}
	st, err := m.Status()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s (%s): %s\n", o.serviceName, m.Platform(), st)
	return nil
}

// serviceManager is a Manager for an installed service, which needs no
// command line: only its name.
func serviceManager(name string) (*svcinstall.Manager, error) {
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.Abs(exe)
	}
	if err != nil {
		return nil, err
	}
	return svcinstall.New(svcinstall.Config{Name: name, Executable: exe})
}
