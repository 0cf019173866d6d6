# Lanyard: build, test and run. Every target installs the Debian packages it needs first (as root), or prints
# the exact command to run when it cannot.
SWIFT ?= swift
DEBIAN_PACKAGES := libssl-dev libsystemd-dev pkg-config protobuf-compiler libprotobuf-dev openssl
FORMAT_PATHS := Package.swift Sources Tests

.PHONY: deps build test run fmt lint clean

deps:
	@missing=""; \
	for package in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		else \
			echo "missing Debian packages:$$missing"; \
			echo "install them with: sudo apt-get update && sudo apt-get install -y$$missing"; \
			exit 1; \
		fi; \
	fi

build: deps
	$(SWIFT) build

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test

# The agent itself arrives with the Workload API issue; until then this builds the CLI and shows what it offers.
run: build
	$(SWIFT) run lanyard --help

fmt:
	$(SWIFT) format format --in-place --recursive $(FORMAT_PATHS)

lint:
	$(SWIFT) format lint --recursive $(FORMAT_PATHS)

clean:
	rm -rf .build
