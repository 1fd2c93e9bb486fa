# ferry's build. `make test` runs everything CI runs; `make run` runs ferry
# on its embedded defaults. Tools are built from pinned Go modules into
# .cache/ once and reused; host packages the tests need are installed by
# hack/deps.sh.

GO      ?= go
CACHE   ?= $(CURDIR)/.cache
BIN     := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
FUZZTIME ?= 20s

# The host's git settings must not change what tests see.
export GIT_CONFIG_GLOBAL := /dev/null
export GIT_CONFIG_NOSYSTEM := 1

.PHONY: all build run test deps kube lint verify generate unit fuzz bench screenshots clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ferry ./cmd/ferry

# The main job on embedded defaults: ferry serve watching a Git repository
# made once from examples/python (hack/run.sh says which commit shows a
# deploy). Functions at http://$(ADDR)/dev/hello, the API on $(LISTEN),
# the embedded registry on $(REGISTRY_ADDR).
ADDR ?= 127.0.0.1:8081
LISTEN ?= 127.0.0.1:8080
REGISTRY_ADDR ?= 127.0.0.1:8082
run: deps build
	ADDR=$(ADDR) LISTEN=$(LISTEN) REGISTRY_ADDR=$(REGISTRY_ADDR) FERRY=$(BIN)/ferry hack/run.sh

test: deps kube lint verify unit fuzz

deps:
	hack/deps.sh

# kube builds the Kubernetes binaries the tests run (kube-apiserver, etcd,
# kubectl, and a node's kubelet and containerd) into a cache folder outside
# the clone, once: about 10 to 17 minutes on two cores the first time,
# nothing after. Done before the tests so no test's hang bound counts it.
kube:
	@hack/kube.sh >/dev/null

lint:
	$(GO) vet ./...
	GO=$(GO) hack/imports.sh
	cd examples/go && $(GO) vet ./...
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# verify fails when go.mod or generated code is stale.
verify:
	$(GO) mod tidy -diff
	cd hack/tools && $(GO) mod tidy -diff
	hack/verify-generated.sh

generate:
	hack/tool.sh controller-gen object:headerFile=hack/boilerplate.go.txt paths=./manifests/...
	hack/crds.sh config/crd
	$(GO) run ./cmd/ferry docs > docs/cli.md

# -timeout is a hang bound per package: the slowest (build, test/) take
# three to four minutes with -race on two busy cores, so go test's default
# of ten would be too close.
unit:
	$(GO) test -race -count=1 -timeout 45m ./...

fuzz:
	GO=$(GO) hack/fuzz.sh $(FUZZTIME)

# screenshots runs the dashboard's browser test (a real ferry serve and a
# headless Chromium) and keeps its picture of the environments page, the
# one the README shows, in docs/img/environments.png.
screenshots: deps
	FERRY_SCREENSHOTS=$(CURDIR)/docs/img $(GO) test -count=1 -run 'TestDashboard$$' ./test/

# bench runs the Go benchmarks, then times ferry's builds against ko's
# (test/bench/README.md); it is not part of `make test`.
bench:
	hack/deps.sh bench
	$(GO) test -run='^$$' -bench=. -benchmem ./...
	test/bench/build.sh
	test/bench/embedded.sh
	test/bench/engine.sh
	test/bench/promote.sh
	test/bench/previews.sh
	test/bench/kube.sh
	test/bench/kube-node.sh

clean:
	rm -rf $(BIN)
