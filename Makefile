# QTunnel — make targets. `make help` lists them.

GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS     := -s -w -X main.version=$(VERSION)
# Pinned: staticcheck v0.8.2 is the release that supports Go 1.26.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 60s

.PHONY: help build test vet lint staticcheck unit demo fuzz clean bench bench-quick gui gui-windows gui-test soak

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

gui-test: ## the desktop client's own CI step (root, Fyne build deps, gnome-keyring): vet, staticcheck, tests, both builds
	cd client-gui && $(GO) vet ./...
	cd client-gui && $(STATICCHECK) ./...
	cd client-gui && $(GO) test -race -count=1 -timeout 8m ./internal/ui/ ./internal/appmodel/ ./internal/autostart/
	@# a real gnome-keyring in a throwaway D-Bus session, and a real service install (root)
	client-gui/scripts/test-keyring-service.sh
	$(MAKE) gui gui-windows

demo: build ## run a server and client on loopback, send requests through, print figures
	$(GO) run ./tools/demo -bin bin/qtunnel

fuzz: ## run every fuzz target for FUZZTIME (default 60s) each
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

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
