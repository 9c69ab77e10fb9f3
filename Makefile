# Thin wrapper over CMake. `make test` does everything a fresh Debian
# machine needs: packages, both builds (plain -Werror and ASan+UBSan), ctest.
NPROC    := $(shell nproc 2>/dev/null || echo 2)
BUILD    ?= build
SANBUILD ?= build-san
PKGBUILD ?= build-pkg

.PHONY: all deps build build-san test test-plain test-san clean demo package

all: build

deps:
	@sh scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMC_WERROR=ON -DMC_TEST_HOOKS=ON
	cmake --build $(BUILD) -j$(NPROC)

build-san: deps
	cmake -S . -B $(SANBUILD) -DCMAKE_BUILD_TYPE=Debug -DMC_WERROR=ON -DMC_SANITIZE=ON -DMC_TEST_HOOKS=ON
	cmake --build $(SANBUILD) -j$(NPROC)

test: test-plain test-san

test-plain: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(NPROC)

test-san: build-san
	ctest --test-dir $(SANBUILD) --output-on-failure -j$(NPROC)

clean:
	rm -rf $(BUILD) $(SANBUILD)

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
# builds $(BUILD) as `make test` does, ends by itself, leaves nothing behind.
demo: build
	@MC_EXTRA_PKGS="curl jq" sh scripts/install-deps.sh
	@sh scripts/demo.sh $(BUILD)
