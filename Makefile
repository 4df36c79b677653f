# Evo: `make run` runs the tour, `make test` runs every test.
# Each target installs what it needs (scripts/install-deps), configures and builds.
BUILD      ?= build
ASAN_BUILD ?= build-asan
GENERATOR  ?= Ninja
JOBS       ?= $(shell nproc)

.PHONY: all deps build run test test-asan test-fuzz bench format tidy clean

all: build

deps:
	@scripts/install-deps build

$(BUILD)/build.ninja:
	@scripts/install-deps build
	cmake -S . -B $(BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/build.ninja
	@scripts/install-deps build
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/evo examples/tour.lua

test: $(BUILD)/build.ninja
	@scripts/install-deps test
	cmake --build $(BUILD) -j $(JOBS)
	@scripts/run-tests $(BUILD)

$(ASAN_BUILD)/build.ninja:
	@scripts/install-deps asan
	CC=clang CXX=clang++ cmake -S . -B $(ASAN_BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Debug -DEVO_SANITIZE=ON

test-asan: $(ASAN_BUILD)/build.ninja
	@scripts/install-deps asan
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	@EVO_SANITIZED=1 scripts/run-tests $(ASAN_BUILD)

bench: build
	@scripts/install-deps bench
	@for b in bench/*.sh; do [ -e "$$b" ] && bash "$$b" ./$(BUILD)/evo; done; true

format:
	clang-format -i $$(git ls-files 'src/*.cpp' 'src/*.h' 'tests/cpp/*.cpp' 'tools/*.cpp')

tidy: $(BUILD)/build.ninja
	clang-tidy -p $(BUILD) $$(git ls-files 'src/*.cpp')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
