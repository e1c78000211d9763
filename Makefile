# QTunnel — make targets. `make help` lists them.

GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS     := -s -w -X main.version=$(VERSION)
# Pinned: staticcheck v0.8.2 is the release that supports Go 1.26.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 60s

.PHONY: help build test vet lint staticcheck unit demo fuzz clean bench bench-quick

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
	@# the loopback throughput regression check: a ratio, built without -race
	$(GO) test -count=1 -run '^TestLoopbackThroughputRatio$$' -v ./core/tunnel/
	cd third_party/quic-go && $(GO) test -race -count=1 ./internal/congestion/

lint: vet staticcheck ## gofmt, go vet, staticcheck

demo: build ## run a server and client on loopback, send requests through, print figures
	$(GO) run ./tools/demo -bin bin/qtunnel

fuzz: ## run every fuzz target for FUZZTIME (default 60s) each
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

clean:
	rm -rf bin dist

bench: build ## the benchmark suite (root; 15-25 min): writes bench/results/, see docs/benchmarks.md
	$(GO) build -o bin/qtbench ./bench
	./bin/qtbench $(BENCHFLAGS)

bench-quick: build ## a short benchmark run: loopback and wan, fewer tries
	$(GO) build -o bin/qtbench ./bench
	./bin/qtbench -envs=loopback,wan -bulk-seconds=4 -rr-tries=50 -cold-tries=5 $(BENCHFLAGS)
