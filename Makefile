# scimd — common tasks. `make run` serves on the embedded SQLite default;
# `make test` runs every test (PostgreSQL ones when SCIMD_TEST_POSTGRES_URL is set).

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin/scimd

.PHONY: run build test test-race lint fmt clean fuzz mutate

run: build
	$(BIN) serve --log-format console

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/scimd

test:
	$(GO) test -count=1 ./...

test-race:
	$(GO) test -race -count=1 ./...

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

# Fuzz targets (package:target); `make test` runs their seed corpora (testdata/fuzz/)
# as ordinary tests. `make fuzz` fuzzes each for FUZZTIME; new failing inputs are
# written to the package's testdata/fuzz/<Target>/.
FUZZTIME    ?= 60s
FUZZ_TARGETS = ./store/gormstore:FuzzCompileFilter ./store/gormstore:FuzzFilterAgrees \
	./scim:FuzzPatch ./scim:FuzzParseSimpleFilter ./scim:FuzzParseSimplePath ./cmd/scimd:FuzzBodies \
	./scim/scimhttp:FuzzAppendJSON ./scim:FuzzDecodeStored ./scim:FuzzDecodeJSON

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} ($${t%%:*}) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) "$${t%%:*}" || exit 1; \
	done

# Mutation testing (never part of test or CI): mutates ./scim, ./store/gormstore,
# ./compat and ./scim/scimhttp one change at a time and runs each mutant against the
# tests, in any package, whose coverage reaches it. Stops launching mutants after
# -budget (default 30m) and reports per package; text on stdout, JSON in
# bin/mutate/report.json. See README "Mutation testing".
# Example: make mutate MUTATE_FLAGS="-budget 20m -sample 40"
MUTATE_FLAGS ?=

mutate:
	$(GO) build -o bin/scimmutate ./cmd/scimmutate
	bin/scimmutate $(MUTATE_FLAGS)

# Benchmarks (never part of test): scimbench starts bin/scimd on 127.0.0.1 over a
# fresh SQLite file, then over a fresh PostgreSQL database created through
# SCIMD_BENCH_POSTGRES_URL when it is set (and dropped afterwards), and prints each
# figure next to the database alone and the naive stack (plain net/http + gorm).
# Results: bin/bench*/.
.PHONY: bench bench-large bench-build

BENCH_DIR   ?= bin/bench
BENCH_FLAGS ?= -users 10000 -group-sizes 1000,10000 -duration 5s -member-ops 200 -deletes 1000

bench-build: build
	$(GO) build -o bin/scimbench ./cmd/scimbench

bench: bench-build
	@mkdir -p $(BENCH_DIR) && rm -f $(BENCH_DIR)/sqlite.db $(BENCH_DIR)/sqlite.db-*
	bin/scimbench -scimd $(BIN) -database sqlite://$(BENCH_DIR)/sqlite.db \
		-server-log $(BENCH_DIR)/scimd-sqlite.log -json $(BENCH_DIR)/sqlite.json $(BENCH_FLAGS)
	@if [ -n "$$SCIMD_BENCH_POSTGRES_URL" ]; then \
		echo bin/scimbench -scimd $(BIN) -postgres-admin "\$$SCIMD_BENCH_POSTGRES_URL" -server-log $(BENCH_DIR)/scimd-postgres.log -json $(BENCH_DIR)/postgres.json $(BENCH_FLAGS); \
		bin/scimbench -scimd $(BIN) -postgres-admin "$$SCIMD_BENCH_POSTGRES_URL" \
			-server-log $(BENCH_DIR)/scimd-postgres.log -json $(BENCH_DIR)/postgres.json $(BENCH_FLAGS); \
	else echo "SCIMD_BENCH_POSTGRES_URL is not set: PostgreSQL skipped"; fi

# bench-large: 1M users (990,000 preloaded untimed through scimd's store, 10,000
# created over HTTP and timed) and a group grown to 100k members.
bench-large:
	$(MAKE) bench BENCH_DIR=bin/bench-large \
		BENCH_FLAGS="-preload 990000 -users 10000 -group-sizes 1000,10000,100000 -duration 20s -member-ops 500 -deletes 2000 -create-timeout 2h"
