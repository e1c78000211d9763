package main

import (
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"

	"github.com/qtunnel/qtunnel/core/config"
)

// parsedArgs is what the first part of run makes of a command line.
type parsedArgs struct {
	o        *options
	fs       *flag.FlagSet
	flagErr  error // from the flag package
	checkErr error // from options.check
}

// parseArgs is the part of run that turns the command line into checked
// options, without executing anything: the flags, then options.check.
func parseArgs(args []string) parsedArgs {
	p := parsedArgs{o: new(options)}
	p.fs = newFlagSet(p.o)
	if p.flagErr = p.fs.Parse(args); p.flagErr == nil {
		p.checkErr = p.o.check()
	}
	return p
}

// FuzzFlags feeds the command-line parser (newFlagSet, then
// options.check, then buildConfig for flags without a file) arguments
// split at NUL bytes, which is what an argv can hold. It must never
// panic; every error it reports is one line (run prints it after
// "qtunnel: " on stderr, and a second line would let an argument forge
// one) of a length linear in the arguments'; check's errors are usage
// errors (exit code 2); the result depends on the arguments only; and
// options check accepts make a configuration that buildConfig accepts,
// that says what the flags said, and that config.Parse accepts as well
// when written as a file.
func FuzzFlags(f *testing.F) {
	for _, args := range [][]string{
		{"-listen=:443", "-backend=internal-server:80", "-secret-file=/etc/qtunnel/secret", "-quic=true"},
		{"-listen=127.0.0.1:8080", "-backend=server.example:443", "-clientmode=true", "-quic=true", "-pin=sha256:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"},
		{"-listen=[::1]:8080", "-backend=[2001:db8::1]:443", "-clientmode", "-pool=256", "-sni=a.example", "-ca=system"},
		{"--listen", ":1", "--backend", "a:1", "-log-level=debug", "-log-format=json", "-drain-timeout=1m30s", "-congestion=reno"},
		{"-config=client.yaml", "-backend=b:1"},
		{"-generate-secret", "-secret-file=s"},
		{"-listen=:1", "-backend=a:1", "-pprof=[::1]:6060", "-metrics=127.0.0.1:9100", "-control=off"},
		{"-listen=:1", "-backend=a:1", "extra"},
		{"-listen=:1", "-backend=a.example:65535", "-log-level=error", "-log-format=text", "-drain-timeout=0s", "-metrics=:9100"},
		{"-listen=:1", "-backend=a:1", "-log-level=loud"},
		{"-listen=:1", "-backend=a:0"},
		{"-pool=-1", "-listen=:1", "-backend=a:1"},
		{"-bogus"},
		{"-help"},
		{},
	} {
		f.Add(strings.Join(args, "\x00"))
	}
	getenv := func(k string) string {
		if k == "STATE_DIRECTORY" {
			return "/nonexistent/qtunnel-fuzz"
		}
		return ""
	}
	f.Fuzz(func(t *testing.T, in string) {
		var args []string
		if in != "" {
			args = strings.Split(in, "\x00")
		}
		p, again := parseArgs(args), parseArgs(args)
		if !reflect.DeepEqual(p.o, again.o) || errText(p.flagErr) != errText(again.flagErr) || errText(p.checkErr) != errText(again.checkErr) {
			t.Fatalf("parsing %q twice gave different results", args)
		}
		o, fs, perr, cerr := p.o, p.fs, p.flagErr, p.checkErr
		oneLine := func(what string, err error) {
			msg := err.Error()
			if line := errorLine(err, ""); msg == "" || strings.ContainsAny(line, "\r\n") {
				t.Fatalf("%s error for %q is not printed on one line: %q", what, args, line)
			}
			if len(msg) > 12*len(in)+512 {
				t.Fatalf("%s error for %d bytes of arguments is %d bytes", what, len(in), len(msg))
			}
		}
		if perr != nil {
			if !errors.Is(perr, flag.ErrHelp) {
				oneLine("flag", perr)
			}
			return
		}
		if cerr != nil {
			var ue usageError
			if !errors.As(cerr, &ue) {
				t.Fatalf("check(%q) = %v, not a usage error (exit code 1, not 2)", args, cerr)
			}
			oneLine("check", cerr)
			return
		}
		if fs.NArg() > 0 || o.generateSecret || o.generateCert || o.version || o.checkConfig != "" || o.configFile != "" {
			// A stray argument, or a mode that reads or writes files: run
			// stops or goes elsewhere before buildConfig.
			return
		}
		cfg, err := buildConfig(o, flagsSet(fs), getenv)
		if err != nil {
			t.Fatalf("check accepts %q but buildConfig says: %v", args, err)
		}
		if (cfg.Mode == config.ModeClient) != o.clientMode || cfg.Transport != string(o.transport()) {
			t.Fatalf("%q: mode %s, transport %s", args, cfg.Mode, cfg.Transport)
		}
		if cfg.LogLevel != o.logLevel || cfg.LogFormat != o.logFormat || cfg.DrainTimeout != o.drainTimeout || cfg.Congestion != o.congestion {
			t.Fatalf("%q: log %s/%s, drain %v, congestion %s", args, cfg.LogLevel, cfg.LogFormat, cfg.DrainTimeout, cfg.Congestion)
		}
		if o.clientMode {
			if cfg.Server != o.backend || len(cfg.Forwards) != 1 || cfg.Forwards[0].Listen != o.listen || cfg.Pool != o.poolSize {
				t.Fatalf("client %q: server %s, forwards %+v, pool %d", args, cfg.Server, cfg.Forwards, cfg.Pool)
			}
			if cfg.Listen != "" || len(cfg.Targets) != 0 {
				t.Fatalf("client %q has server settings: listen %s, targets %+v", args, cfg.Listen, cfg.Targets)
			}
		} else {
			if cfg.Listen != o.listen || len(cfg.Targets) != 1 || cfg.Targets[0].Address != o.backend || cfg.DefaultTarget != cfg.Targets[0].Name {
				t.Fatalf("server %q: listen %s, targets %+v, default %s", args, cfg.Listen, cfg.Targets, cfg.DefaultTarget)
			}
			if cfg.Server != "" || len(cfg.Forwards) != 0 || cfg.Trust != (config.Trust{}) {
				t.Fatalf("server %q has client settings: server %s, forwards %+v, trust %+v", args, cfg.Server, cfg.Forwards, cfg.Trust)
			}
		}
		if cfg.StateDir == "" {
			t.Fatalf("%q: no state directory", args)
		}
		// The flags and the file agree: what the flags may say, the same
		// configuration written as a file says too. (The secret may come
		// from the environment; a file names a secret file.)
		if len(cfg.SecretFiles) == 0 {
			cfg.SecretFiles = []string{"/etc/qtunnel/secret"}
		}
		if _, err := config.Parse("flags.yaml", config.Format(cfg)); err != nil {
			t.Fatalf("check accepts %q, but not as a file: %v\n%s", args, err, config.Format(cfg))
		}
	})
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
