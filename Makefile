# migrated: build, test, demo, benchmarks.
GO       ?= go
BIN      := bin/migrated
PKGS     := ./...

.PHONY: all build deps test test-unit demo bench e2e-power e2e-power-le generate fuzz-smoke vet clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/migrated

deps:
	bash e2e/deps.sh

# The whole default suite, as CI runs it (root: the engine and e2e tests need
# it): every package's tests (the i386 ones inside an x86_64 guest), then the
# ppc64le pairs of the POWER tier (big-endian pairs: make e2e-power).
test: deps build
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 25m $(PKGS)
	$(MAKE) e2e-power-le

# Fast tests only, no root needed.
test-unit:
	$(GO) test -short -count=1 $(PKGS)

# Moves a real process between two namespace hosts and prints the report.
demo: deps build
	./$(BIN) demo

# Benchmarks, side by side in one run each: the live move between two
# namespace hosts (256 MiB and 1 GiB) against CRIU 4's page-server dump and
# restore of the same workload (CRIU is unpacked into the e2e cache by
# e2e/criu/fetch.sh; MIGRATED_CRIU=off leaves it out), checkpoint/restore
# through an image, the page stream against plain QUIC. Root. BENCH_DOWNTIME
# sets --downtime-limit for the moves; BENCH_TIMES how many moves of each
# (default 1).
BENCH_TIMES ?= 1
bench: deps build
	MIGRATED_BENCH_DOWNTIME=$(BENCH_DOWNTIME) $(GO) test -timeout 60m -run '^$$' -bench BenchmarkMove -benchtime $(BENCH_TIMES)x -v ./e2e/hosts
	$(GO) test -run '^$$' -bench BenchmarkCheckpointRestore -benchtime 1x ./e2e/engine
	$(GO) test -run '^$$' -bench 'BenchmarkPageStreamVsRaw' -benchtime 1x ./transport

e2e-power:
	bash e2e/power/run.sh

# The ppc64le pairs only (no big-endian kernel needed): what make test runs.
e2e-power-le:
	MIGRATED_E2E_POWER_ARCHES=ppc64le bash e2e/power/run.sh

generate:
	cd image && PATH="$$PATH:$$($(GO) env GOPATH)/bin" $(GO) generate ./...

vet:
	$(GO) vet $(PKGS)

clean:
	rm -rf bin
