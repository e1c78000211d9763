# QTunnel — make targets. `make help` lists them.

GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS     := -s -w -X main.version=$(VERSION)
# Pinned: staticcheck v0.8.2 is the release that supports Go 1.26.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Pinned: gosec v2.30.0 (built with Go 1.26). Not part of make test: each
# finding is triaged in docs/gosec.md.
GOSEC       ?= $(GO) run github.com/securego/gosec/v2/cmd/gosec@v2.30.0
FUZZTIME    ?= 60s

.PHONY: help build test vet lint staticcheck gosec unit demo fuzz clean bench bench-quick gui gui-windows gui-installer gui-test soak release package-test systemd-test image image-test

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

build: ## build the headless binary into bin/qtunnel
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/qtunnel ./server

test: vet staticcheck unit ## everything CI checks: gofmt, go vet, staticcheck, go test -race

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

staticcheck:
	$(STATICCHECK) ./...

unit: ## go test -race on every package (end-to-end tests included), and the quic-go fork's controller
	$(GO) test -race -count=1 -timeout 8m ./...
	@# timing checks, built without -race and run on their own: the lab's
	@# link emulator against its settings, and the loopback throughput ratio
	$(GO) test -count=1 -run '^TestLabSelfCheck$$' ./lab/
	$(GO) test -count=1 -run '^TestLoopbackThroughputRatio$$' -v ./core/tunnel/
	cd third_party/quic-go && $(GO) test -race -count=1 ./internal/congestion/

lint: vet staticcheck ## gofmt, go vet, staticcheck

gosec: ## security lint of the module (not third_party, not client-gui); docs/gosec.md triages what it reports
	$(GOSEC) -exclude-dir=third_party -exclude-dir=client-gui ./...

# The desktop client (module client-gui, Fyne: cgo). See client-gui/BUILDING.md.
# go-winres makes the Windows resources (icon, manifest, version info) from
# client-gui/winres/winres.json into a .syso that go build links in; it runs
# pinned through `go run`, so it is in neither module's go.mod.
GO_WINRES   ?= $(GO) run github.com/tc-hib/go-winres@v0.3.3
MINGW_CC    ?= x86_64-w64-mingw32-gcc

gui: ## build the desktop client for this machine into bin/qtunnel-gui
	cd client-gui && $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o ../bin/qtunnel-gui .

gui-windows: ## cross-build the desktop client, with icon and manifest, into dist/windows-amd64/ (needs mingw-w64)
	cd client-gui && $(GO_WINRES) make --in winres/winres.json --arch amd64 --out rsrc \
	  --product-version '$(VERSION)' --file-version '$(VERSION)'
	cd client-gui && CGO_ENABLED=1 CC=$(MINGW_CC) GOOS=windows GOARCH=amd64 \
	  $(GO) build -trimpath -ldflags '-H=windowsgui $(LDFLAGS)' -o ../dist/windows-amd64/qtunnel-gui.exe .

# The Windows setup (NSIS: apt-get install nsis), checked by test-installer.sh:
# file(1), the PE header, 7z's list of its contents (p7zip-full) and, where
# Wine is installed (wine64), a silent install and uninstall.
gui-installer: gui-windows ## the desktop client's Windows setup, dist/qtunnel-gui-setup-VERSION.exe (needs nsis), and its check
	VERSION='$(VERSION)' packaging/windows/build-installer.sh
	VERSION='$(VERSION)' packaging/windows/test-installer.sh

gui-test: ## the desktop client's own CI step (root, Fyne build deps, gnome-keyring): vet, staticcheck, tests, both builds, the Windows setup
	cd client-gui && $(GO) vet ./...
	cd client-gui && $(STATICCHECK) ./...
	cd client-gui && $(GO) test -race -count=1 -timeout 8m ./internal/ui/ ./internal/appmodel/ ./internal/autostart/
	@# a real gnome-keyring in a throwaway D-Bus session, and a real service install (root)
	client-gui/scripts/test-keyring-service.sh
	@# the macOS app recipe, as far as Linux can check it (shellcheck, xmllint)
	packaging/macos/test-recipe.sh
	$(MAKE) gui gui-installer

demo: build ## run a server and client on loopback, send requests through, print figures
	$(GO) run ./tools/demo -bin bin/qtunnel

# Every Fuzz target of every package, found with go test -list, each for
# FUZZTIME; a target that fails does not stop the others, and the list of
# failures comes at the end. A failing input is left in the package's
# testdata/fuzz/FuzzName/: commit it (as a regression seed) only with the fix.
# Go 1.26's fuzzing coordinator can end a run at the -fuzztime deadline with
# a bare "context deadline exceeded" and no failing input (golang/go#75804,
# fixed in Go 1.27): that is counted as a flake, not a failure.
fuzz: ## run every fuzz target for FUZZTIME (default 60s) each
	@failed=""; flaky=""; n=0; out=$$(mktemp); \
	for pkg in $$($(GO) list ./...); do \
	  targets=$$($(GO) test -list '^Fuzz' $$pkg) || { echo "== $$pkg: tests do not build"; failed="$$failed $$pkg"; continue; }; \
	  for f in $$(echo "$$targets" | grep '^Fuzz'); do \
	    n=$$((n+1)); echo "== $$pkg $$f"; \
	    { $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; echo $$? >$$out.rc; } 2>&1 | tee $$out; \
	    if [ "$$(cat $$out.rc)" != 0 ]; then \
	      if grep -q 'context deadline exceeded' $$out && ! grep -q 'Failing input written' $$out; then flaky="$$flaky $$pkg.$$f"; \
	      else failed="$$failed $$pkg.$$f"; fi; \
	    fi; \
	  done; \
	done; rm -f $$out $$out.rc; \
	if [ -n "$$flaky" ]; then echo "fuzz: deadline flakes (golang/go#75804), no failing input:$$flaky"; fi; \
	if [ -n "$$failed" ]; then echo "fuzz: $$n targets, FAILED:$$failed"; exit 1; fi; \
	echo "fuzz: $$n targets, all passed"

# Release artefacts: reproducible binaries (no cgo, -trimpath, no build id,
# the version from git describe), .deb and .rpm made with a pinned nfpm, and
# SHA256SUMS; see packaging/README.md. The desktop client is not in it (it
# needs cgo and a C cross-compiler per platform): make gui-windows.
release: ## binaries for linux, windows and macOS, .deb and .rpm (amd64, arm64), SHA256SUMS, in dist/
	VERSION='$(VERSION)' GO='$(GO)' packaging/release.sh

package-test: ## install the .deb and .rpm make release built for this machine in throwaway roots (dpkg --root, rpm --root): files, secret, upgrade, purge, unit hardening, systemd-analyze
	VERSION='$(VERSION)' packaging/test-package.sh

systemd-test: ## run the .deb's service, then qtunnel -install-service's, under a real systemd: a cached Debian 12 root booted with systemd-nspawn (root; needs make release)
	packaging/test-systemd.sh

# The container image, built without a container engine (tools/mkimage,
# go-containerregistry): one docker save tarball per architecture, from
# make release's linux binaries (built here if missing or from another
# tree). See packaging/container/README.md.
image: ## container image tarballs dist/qtunnel-image-{amd64,arm64}.tar (FROM scratch, non-root, health check)
	VERSION='$(VERSION)' GO='$(GO)' packaging/container/build.sh

image-test: ## check the image tarballs with skopeo (user, entrypoint, ports, health check, size); runs it with podman if present
	VERSION='$(VERSION)' GO='$(GO)' packaging/container/test-image.sh

clean:
	rm -rf bin dist
	rm -f client-gui/rsrc_windows_amd64.syso

bench: build ## the benchmark suite (root; 15-25 min): writes bench/results/, see docs/benchmarks.md
	$(GO) build -o bin/qtbench ./bench
	./bin/qtbench $(BENCHFLAGS)

soak: build ## 10-minute soak (root): 500 connections on the mobile profile, a migration a minute; writes bench/results/soak/
	$(GO) run ./bench/soak -bin bin/qtunnel $(SOAKFLAGS)

bench-quick: build ## a short benchmark run: loopback and wan, fewer tries
	$(GO) build -o bin/qtbench ./bench
	./bin/qtbench -envs=loopback,wan -bulk-seconds=4 -rr-tries=50 -cold-tries=5 $(BENCHFLAGS)
