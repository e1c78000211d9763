package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/qtunnel/qtunnel/core/config"
)

// buildConfig is the configuration to run: the -config file with the
// flags given on the command line laid over it, or the flags alone (the
// design document's form).
func buildConfig(o *options, set map[string]bool, getenv func(string) string) (*config.Config, error) {
	var cfg *config.Config
	if o.configFile != "" {
		var err error
		if cfg, err = config.Load(o.configFile); err != nil {
			return nil, err
		}
		if set["clientmode"] && (cfg.Mode == config.ModeClient) != o.clientMode {
			return nil, usagef("-clientmode=%t contradicts mode: %s in %s", o.clientMode, cfg.Mode, o.configFile)
		}
	} else {
		cfg = &config.Config{Mode: config.ModeServer}
		if o.clientMode {
			cfg.Mode = config.ModeClient
		}
	}
	override(cfg, o, set)
	if err := checkMerged(cfg); err != nil {
		return nil, err
	}
	if cfg.StateDir == "" {
		cfg.StateDir = defaultStateDir(getenv)
	}
	return cfg, nil
}

// flagsSet names the flags given on the command line.
func flagsSet(fs *flag.FlagSet) map[string]bool {
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// override lays the flags given on the command line over cfg. Without a
// file, every flag counts, so that their defaults apply.
func override(cfg *config.Config, o *options, set map[string]bool) {
	given := func(name string) bool { return o.configFile == "" || set[name] }
	client := cfg.Mode == config.ModeClient
	if given("listen") && o.listen != "" {
		if client {
			// One forward, as in the design document: to the server's default target.
			cfg.Forwards = []config.Forward{{Name: "default", Listen: o.listen}}
		} else {
			cfg.Listen = o.listen
		}
	}
	if given("backend") && o.backend != "" {
		if client {
			cfg.Server, cfg.Servers = o.backend, nil
			if addrs := strings.Split(o.backend, ","); len(addrs) > 1 {
				cfg.Server = addrs[0]
				for _, a := range addrs {
					cfg.Servers = append(cfg.Servers, config.ServerEntry{Address: a})
				}
			}
		} else {
			setDefaultTarget(cfg, o.backend)
		}
	}
	if given("quic") {
		cfg.Transport = string(o.transport())
	}
	if set["secret-file"] {
		cfg.SecretFiles = []string{o.secretFile}
	}
	if set["cert-file"] {
		cfg.CertFile, cfg.KeyFile = o.certFile, o.keyFile
	}
	if set["pin"] {
		cfg.Trust.Pin = o.pin
	}
	if set["ca"] {
		cfg.Trust.CA = o.ca
	}
	if set["sni"] {
		cfg.Trust.SNI = o.sni
	}
	if set["state-dir"] {
		cfg.StateDir = o.stateDir
	}
	if given("log-level") {
		cfg.LogLevel = o.logLevel
	}
	if given("log-format") {
		cfg.LogFormat = o.logFormat
	}
	if given("drain-timeout") {
		cfg.DrainTimeout = o.drainTimeout
	}
	if given("pool") && client {
		cfg.Pool = o.poolSize
	}
	if given("congestion") {
		cfg.Congestion = o.congestion
	}
	if set["metrics"] {
		cfg.Metrics = o.metrics
	}
	if set["control"] {
		cfg.Control = o.control
	}
	if set["masquerade"] && !client {
		cfg.Masquerade = o.masquerade
	}
}

// setDefaultTarget makes addr the target named "default" and the default.
func setDefaultTarget(cfg *config.Config, addr string) {
	for i, t := range cfg.Targets {
		if t.Name == "default" {
			cfg.Targets[i].Address = addr
			cfg.DefaultTarget = "default"
			return
		}
	}
	cfg.Targets = append(cfg.Targets, config.Target{Name: "default", Address: addr})
	cfg.DefaultTarget = "default"
}

// checkMerged checks what a file and flags together must provide.
func checkMerged(cfg *config.Config) error {
	if cfg.Mode == config.ModeClient {
		if cfg.Server == "" {
			return usagef("no server address: give server: in the file, or -backend")
		}
		if len(cfg.Forwards) == 0 {
			return usagef("no forward: give forwards: in the file, or -listen")
		}
		return nil
	}
	if cfg.Listen == "" {
		return usagef("no listen address: give listen: in the file, or -listen")
	}
	if len(cfg.Targets) == 0 {
		return usagef("no target: give targets: or backend: in the file, or -backend")
	}
	return nil
}

// checkConfigFile is -check-config: it reports every error, or a summary
// of what the file sets up.
func checkConfigFile(path string, stdout io.Writer) error {
	cfg, err := config.Load(path)
	if err != nil {
		var list []string
		for _, e := range config.Errors(err) {
			list = append(list, e.Error())
		}
		if len(list) == 0 {
			return err
		}
		return errors.New(strings.Join(list, "\n"))
	}
	fmt.Fprintf(stdout, "%s: ok (%s", path, cfg.Mode)
	if cfg.Mode == config.ModeClient {
		fmt.Fprintf(stdout, ", server %s, %d forward(s))\n", cfg.Server, len(cfg.Forwards))
		for _, f := range cfg.Forwards {
			target := f.Target
			if target == "" {
				target = "(the server's default)"
			}
			fmt.Fprintf(stdout, "  forward %s: %s -> %s\n", f.Name, f.Listen, target)
		}
		return nil
	}
	fmt.Fprintf(stdout, ", listen %s, %d target(s))\n", cfg.Listen, len(cfg.Targets))
	for _, t := range cfg.Targets {
		mark := ""
		if t.Name == cfg.DefaultTarget {
			mark = " (default)"
		}
		fmt.Fprintf(stdout, "  target %s: %s%s\n", t.Name, t.Address, mark)
	}
	return nil
}
