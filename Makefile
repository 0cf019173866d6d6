# Lanyard: build, test and run. Every target installs the Debian packages it needs first (as root), or prints
# the exact command to run when it cannot.
SWIFT ?= swift
DEBIAN_PACKAGES := libssl-dev libsystemd-dev pkg-config protobuf-compiler libprotobuf-dev openssl systemd curl python3 util-linux login nginx dbus-daemon
# Generated protobuf code is left as the generator wrote it.
FORMAT_PATHS = Package.swift $(shell find Sources Tests -name '*.swift' -not -path '*/Generated/*')
# py-spiffe, the SPIFFE project's Python client: the interop tests drive the agent with it.
PYTHON_TEST_PACKAGES := spiffe==0.3.2 dbus-next==0.2.3

.PHONY: deps build test bench fuzz load run protos install fmt lint clean

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
	@python3 -c "import spiffe, dbus_next, jwt, cryptography" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check $(PYTHON_TEST_PACKAGES)

build: deps
	$(SWIFT) build

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test

# Release build, then every benchmark figure next to its floor measured in the same run (never part of `make test`).
# BENCH_ARGS=--quick runs reduced counts for a smoke run.
bench: deps
	$(SWIFT) build -c release
	LANYARD_COMMIT=$$(git rev-parse --short HEAD 2>/dev/null || echo unknown) .build/release/lanyard-bench \
		--lanyard .build/release/lanyard --fake-kubelet .build/release/lanyard-fake-kubelet \
		--json bench-results.json $(BENCH_ARGS)

# 1,000 FetchX509SVID streams and unary calls against the release agent for a minute while SVIDs rotate; it
# holds when no call fails and RSS and descriptors stay flat (never part of `make test`). LOAD_ARGS: --seconds N,
# --streams N, --unary-clients N.
load: deps
	$(SWIFT) build -c release --product lanyard
	$(SWIFT) build -c release --product lanyard-bench
	.build/release/lanyard-bench load --lanyard .build/release/lanyard $(LOAD_ARGS)

# libFuzzer on every parser of untrusted input (Fuzz/), FUZZ_SECONDS per target (never part of `make test`).
# FUZZ_TARGETS picks some; FUZZ_UPDATE_CORPUS=1 merges what found new code into the committed corpus.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
# SwiftPM's --sanitize=fuzzer links libFuzzer's main but instruments only the root package's targets; -Xswiftc
# carries coverage into the parsers (dependencies of Fuzz/). AddressSanitizer covers every module.
fuzz: deps
	cd Fuzz && $(SWIFT) build --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer
	bash scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

RUN_DIR := $(CURDIR)/run

# Starts the agent in standalone mode with a development config under ./run and an entry for the current user.
# In a second terminal: .build/debug/lanyard api fetch x509 --socket run/api.sock
run: build
	@mkdir -p $(RUN_DIR)
	@sed -e "s|@DIR@|$(RUN_DIR)|g" -e "s|@UID@|$$(id -u)|g" -e "s|@USER@|$$(id -un)|g" config/dev.toml.in > $(RUN_DIR)/dev.toml
	@echo "agent config: $(RUN_DIR)/dev.toml; socket: $(RUN_DIR)/api.sock"
	@echo "in another terminal: .build/debug/lanyard api fetch x509 --socket run/api.sock"
	$(SWIFT) build --product lanyard >/dev/null
	exec .build/debug/lanyard run --config $(RUN_DIR)/dev.toml

# Regenerates the committed protobuf and gRPC code from Sources/LanyardProto/protos.
protos: deps
	bash scripts/generate-protos.sh

PREFIX ?= /usr/local
DESTDIR ?=

# Installs a release build, the reference configuration (never over an existing one; 0640, group lanyard, since it
# may hold a join token's path or settings operators keep private), the systemd units and the sysusers file.
# Then: systemctl daemon-reload && systemctl enable --now lanyard.socket lanyard.service
install: deps
	$(SWIFT) build -c release --product lanyard
	install -D -m 0755 "$$($(SWIFT) build -c release --show-bin-path)/lanyard" $(DESTDIR)$(PREFIX)/bin/lanyard
	install -D -m 0644 systemd/lanyard.service $(DESTDIR)/etc/systemd/system/lanyard.service
	install -D -m 0644 systemd/lanyard.socket $(DESTDIR)/etc/systemd/system/lanyard.socket
	install -D -m 0644 systemd/lanyard-helper@.service $(DESTDIR)/etc/systemd/system/lanyard-helper@.service
	install -D -m 0644 systemd/lanyard.sysusers.conf $(DESTDIR)/usr/lib/sysusers.d/lanyard.conf
	@if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null; then \
		systemd-sysusers /usr/lib/sysusers.d/lanyard.conf; \
	fi
	@if [ -e $(DESTDIR)/etc/lanyard/lanyard.toml ]; then \
		echo "keeping the existing $(DESTDIR)/etc/lanyard/lanyard.toml"; \
	else \
		install -D -m 0640 config/lanyard.toml $(DESTDIR)/etc/lanyard/lanyard.toml; \
		if getent group lanyard >/dev/null; then \
			chgrp lanyard $(DESTDIR)/etc/lanyard/lanyard.toml; \
		else \
			echo "after creating the lanyard user (systemd-sysusers): chgrp lanyard /etc/lanyard/lanyard.toml"; \
		fi; \
	fi
	@sed -i "s|/usr/local/bin/lanyard|$(PREFIX)/bin/lanyard|" $(DESTDIR)/etc/systemd/system/lanyard.service \
		$(DESTDIR)/etc/systemd/system/lanyard-helper@.service

fmt:
	$(SWIFT) format format --in-place $(FORMAT_PATHS)

lint:
	$(SWIFT) format lint $(FORMAT_PATHS)

clean:
	rm -rf .build
