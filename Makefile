# stox: see README.md. `make test` is what CI runs (.ci/run).
GO        ?= go
PKGS      := ./...
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build deps deps-prosody test unit integration vet fmt-check fuzz bench demo clean

all: build

build:
	$(GO) build -o stox ./examples/gateway

# deps installs the real peers the integration tests start; deps-prosody
# only Prosody, all that the demo and the end-to-end bench need.
deps: PEERS := prosody sipp tshark kamailio
deps-prosody: PEERS := prosody
deps deps-prosody:
	@missing=""; \
	for peer in $(PEERS); do \
		case $$peer in \
		prosody) command -v prosody >/dev/null 2>&1 || missing="$$missing prosody" ;; \
		sipp)    command -v sipp    >/dev/null 2>&1 || missing="$$missing sip-tester" ;; \
		tshark)  command -v tshark  >/dev/null 2>&1 || missing="$$missing tshark" ;; \
		kamailio) \
			command -v kamailio >/dev/null 2>&1 || missing="$$missing kamailio"; \
			ls /usr/lib/*/kamailio/modules/presence_xml.so >/dev/null 2>&1 || missing="$$missing kamailio-presence-modules" ;; \
		esac; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# test: formatting, vet, unit and integration tests with -race. Under make a
# missing peer binary is a failure, not a skip (STOX_REQUIRE_PEERS=1).
test: deps fmt-check vet
	STOX_REQUIRE_PEERS=1 $(GO) test -race -count=1 -timeout 15m $(PKGS)

unit:
	$(GO) test -race -count=1 -short $(PKGS)

integration: deps
	STOX_REQUIRE_PEERS=1 $(GO) test -race -count=1 -timeout 15m ./integration/...

# fuzz runs every fuzz target briefly (FUZZTIME each).
FUZZTIME ?= 15s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

# bench: micro-benchmarks of the hot paths with allocations, then the
# end-to-end bench (examples/bench): Prosody, stox and load generators on
# loopback, each path next to its ceiling measured in the same run.
# BENCHFLAGS=-json prints the report as JSON; BENCHFLAGS=-quick is a short run;
# BENCHFLAGS=-presence-only runs only the presence phase (10k and 100k SIP
# subscriptions held by a stox process of its own; examples/bench/presence.go).
# BENCHTIME is each micro-benchmark's run time: a fifth of go test's
# default second keeps the whole target within 5 minutes on a clean, slow
# machine (the figures move more with the host than with it: README,
# Benchmarks). On a clean machine Prosody is installed while the benchmarks
# compile (about 70 s with a cold Go build cache).
BENCHFLAGS ?=
BENCHTIME ?= 200ms
BENCHPKGS := ./mapping ./sipside ./component ./msrp
bench:
	@$(MAKE) --no-print-directory deps-prosody & deps=$$!; \
	$(GO) test -run '^$$' -count=1 $(BENCHPKGS) >/dev/null && \
	$(GO) build -o /dev/null ./examples/bench && \
	$(GO) build -o /dev/null ./examples/gateway; built=$$?; \
	wait $$deps && [ $$built = 0 ]
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(BENCHPKGS)
	$(GO) run ./examples/bench $(BENCHFLAGS)

# demo: Prosody, stox, a scripted XMPP user and a scripted SIP user on
# loopback; Ctrl-C stops everything it started. Built, then run: `go run`
# exits 1 after Ctrl-C even when the demo stopped cleanly.
DEMO_BIN := $(or $(TMPDIR),/tmp)/stox-demo-$(shell id -u)
demo: deps-prosody
	$(GO) build -o $(DEMO_BIN) ./examples/demo
	$(DEMO_BIN)

clean:
	rm -f stox
