# Thin wrapper over CMake. `make test` does everything a fresh Debian
# machine needs: packages, both builds (plain -Werror and ASan+UBSan), ctest.
NPROC    := $(shell nproc 2>/dev/null || echo 2)
BUILD    ?= build
SANBUILD ?= build-san

.PHONY: all deps build build-san test test-plain test-san clean

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
