package archtest

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/qtunnel/qtunnel"

type pkg struct {
	ImportPath string
	Doc        string
	Deps       []string
	Imports    []string
	Standard   bool
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps=false", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func TestEveryPackageDocumented(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package comment", p.ImportPath)
		}
	}
}

// forbiddenForCore are what the engine must never depend on, directly or not.
var forbiddenForCore = []string{
	module + "/server",
	module + "/agent",
	module + "/control",
	module + "/metrics",
	module + "/client-gui",
	module + "/tools",
	"fyne.io/",
	"github.com/kardianos/service",
	"github.com/zalando/go-keyring",
}

func TestCoreDependsOnNoFrontEnd(t *testing.T) {
	for _, p := range listPackages(t) {
		if !strings.HasPrefix(p.ImportPath, module+"/core") {
			continue
		}
		for _, d := range p.Deps {
			for _, f := range forbiddenForCore {
				if strings.HasPrefix(d, f) {
					t.Errorf("%s depends on %s", p.ImportPath, d)
				}
			}
		}
	}
}

// TestLayering keeps the engine's inner packages below the outer ones:
// proto depends on nothing of ours, and no lower layer imports a higher one.
func TestLayering(t *testing.T) {
	layer := map[string]int{
		"core/proto":     0,
		"core/secret":    0,
		"core/cert":      0,
		"core/relay":     0,
		"core/auth":      1,
		"core/config":    1,
		"core/sharelink": 1,
		"core/transport": 2,
		"core/tunnel":    3,
	}
	for _, p := range listPackages(t) {
		from, ok := layer[strings.TrimPrefix(p.ImportPath, module+"/")]
		if !ok {
			continue
		}
		for _, imp := range p.Imports {
			to, ok := layer[strings.TrimPrefix(imp, module+"/")]
			if ok && to >= from {
				t.Errorf("%s (layer %d) imports %s (layer %d)", p.ImportPath, from, imp, to)
			}
		}
	}
}

// TestControlAPIStandsApart keeps the control API and the metrics endpoint
// free of the engine: a front end that talks to a running qtunnel through
// them (the CLI's status, the tray app) cannot reach into its internals.
func TestControlAPIStandsApart(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.ImportPath != module+"/control" && p.ImportPath != module+"/metrics" {
			continue
		}
		for _, d := range p.Deps {
			if strings.HasPrefix(d, module+"/") && d != module+"/control" {
				t.Errorf("%s depends on %s; it may use only the control package of ours", p.ImportPath, d)
			}
		}
	}
}
