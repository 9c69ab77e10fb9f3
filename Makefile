# Thin wrapper over CMake. `make test` does everything a fresh Debian
# machine needs: packages, both builds (plain -Werror and ASan+UBSan), ctest.
NPROC    := $(shell nproc 2>/dev/null || echo 2)
BUILD    ?= build
SANBUILD ?= build-san
PKGBUILD ?= build-pkg
FUZZBUILD ?= build-fuzz
# Seconds per fuzz target: a short run in `make test`, a long one in `make fuzz`.
FUZZ_SECONDS ?= 30
FUZZ_LONG_SECONDS ?= 600

.PHONY: all deps agent-clis build build-san build-fuzz test test-plain test-san test-fuzz fuzz clean demo package bench

all: build

deps:
	@sh scripts/install-deps.sh

# The pinned real claude and codex CLIs for the real-CLI tests, into a
# cache outside the tree (scripts/install-agent-clis.sh). `make test` needs
# no step of its own: ctest's fixture real_cli_install runs the same script
# before test_real_cli, in every build tree, so a bare `ctest` installs them
# too; this target only warms the cache.
agent-clis: deps
	@sh scripts/install-agent-clis.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMC_WERROR=ON -DMC_TEST_HOOKS=ON
	cmake --build $(BUILD) -j$(NPROC)

build-san: deps
	cmake -S . -B $(SANBUILD) -DCMAKE_BUILD_TYPE=Debug -DMC_WERROR=ON -DMC_SANITIZE=ON -DMC_TEST_HOOKS=ON
	cmake --build $(SANBUILD) -j$(NPROC)

# The fuzzers: clang's libFuzzer over every decoder (tests/fuzz), with
# ASan+UBSan; their own build tree.
build-fuzz: deps
	CC=clang-14 cmake -S . -B $(FUZZBUILD) -DCMAKE_BUILD_TYPE=Debug -DMC_FUZZ=ON -DMC_TESTS=OFF \
		-DMC_WERROR=ON -DMC_FUZZ_SECONDS=$(FUZZ_SECONDS)
	cmake --build $(FUZZBUILD) -j$(NPROC)

test: test-plain test-san test-fuzz

test-plain: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(NPROC)

test-san: build-san
	ctest --test-dir $(SANBUILD) --output-on-failure -j$(NPROC)

test-fuzz: build-fuzz
	ctest --test-dir $(FUZZBUILD) --output-on-failure -j$(NPROC)

# Long fuzz runs (FUZZ_LONG_SECONDS per target); the final stats of each
# run (executions, coverage) are in the ctest log.
fuzz:
	$(MAKE) build-fuzz FUZZ_SECONDS=$(FUZZ_LONG_SECONDS)
	ctest --test-dir $(FUZZBUILD) --output-on-failure -V -j$(NPROC)

clean:
	rm -rf $(BUILD) $(SANBUILD) $(FUZZBUILD)

# The Debian package: a release build (never the test hooks, never the
# sanitizers; no -Werror, so a newer compiler's new warning cannot break a
# package build), then cpack. Only what the package holds is built.
package: deps
	cmake -S . -B $(PKGBUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
		-DMC_TESTS=OFF -DMC_TEST_HOOKS=OFF -DMC_SANITIZE=OFF -DMC_WERROR=OFF \
		-DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON
	cmake --build $(PKGBUILD) -j$(NPROC) --target mc_package_contents
	rm -f $(PKGBUILD)/*.deb $(PKGBUILD)/*.ddeb
	cd $(PKGBUILD) && cpack -G DEB
	@for f in $(PKGBUILD)/*.deb; do echo "package: $$(readlink -f $$f)"; done

# A walk through the daemon against the local emulator (scripts/demo.sh):
# builds $(BUILD) as `make test` does (the tests' fake claude CLI included:
# the demo's tasks run on it), ends by itself, leaves nothing behind.
demo: build
	@MC_EXTRA_PKGS="curl jq" sh scripts/install-deps.sh
	@sh scripts/demo.sh $(BUILD)

# Benchmarks (never part of `make test`): sv_bench at N = 10, 100, 1000
# workspaces over HTTP and HTTPS; writes docs/PERFORMANCE.md and docs/perf/
# (CSV + gnuplot PNGs). About 3 minutes of runs on the 2-CPU VM, plus the build.
BENCHBUILD ?= build-bench
bench: deps
	@MC_EXTRA_PKGS="gnuplot-nox" sh scripts/install-deps.sh
	cmake -S . -B $(BENCHBUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMC_WERROR=ON -DMC_TEST_HOOKS=ON -DMC_BENCH=ON
	cmake --build $(BENCHBUILD) -j$(NPROC) --target sv_bench
	sh tests/bench/run.sh $(BENCHBUILD)
