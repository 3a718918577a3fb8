# scimd — common tasks. `make run` serves on the embedded SQLite default;
# `make test` runs every test (PostgreSQL ones when SCIMD_TEST_POSTGRES_URL is set).

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin/scimd

.PHONY: run build test test-race lint fmt clean

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
