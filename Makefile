# Two entry points (see README): `make run` and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: deps build run test test-asan bench clean format

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The main job on the built-in default.
run: build
	@scripts/main-job.sh $(BUILD)

# Whole test suite (every ISA backend this CPU supports), then a sanitizer build of a subset.
test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 1200
	@$(MAKE) --no-print-directory test-asan

test-asan: deps
	@cmake -S . -B $(BUILD)-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDSINFER_SANITIZE=ON \
	  -DDSINFER_TEST_DIRS="core;tile" > /dev/null
	@cmake --build $(BUILD)-asan -j $(JOBS) --target dsinfer_tests_core dsinfer_tests_tile
	@cd $(BUILD)-asan && ctest --output-on-failure -j $(JOBS) --timeout 1200

bench: build
	@$(BUILD)/bin/dsinfer bench gemm

format:
	@find src tools tests bench -name '*.cpp' -o -name '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(BUILD)-asan
