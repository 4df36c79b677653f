# Evo: `make run` runs the tour, `make test` runs every test.
# Each target installs what it needs (scripts/install-deps), configures and builds.
BUILD      ?= build
ASAN_BUILD ?= build-asan
GENERATOR  ?= Ninja
JOBS       ?= $(shell nproc)

.PHONY: all deps build release run test test-asan test-fuzz bench format tidy clean

all: build

deps:
	@scripts/install-deps build

$(BUILD)/build.ninja:
	@scripts/install-deps build
	cmake -S . -B $(BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/build.ninja
	@scripts/install-deps build
	cmake --build $(BUILD) -j $(JOBS)

# The release build: profile-guided (docs/performance.md, "The release
# build"). Instrumented first, trained on scripts/pgo-train's workload, then
# built again with the profiles; the profiles are made anew every time.
RELEASE_BUILD ?= build-release
release:
	@scripts/install-deps release
	cmake -S . -B $(RELEASE_BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEVO_PGO=generate \
	  -DEVO_LTO=ON -DEVO_SANITIZE=OFF -DEVO_FUZZ=OFF
	find $(RELEASE_BUILD) -name '*.gcda' -delete
	cmake --build $(RELEASE_BUILD) -j $(JOBS) --target evo evo_loadgen
	scripts/pgo-train $(RELEASE_BUILD)
	cmake -S . -B $(RELEASE_BUILD) -DEVO_PGO=use
	cmake --build $(RELEASE_BUILD) -j $(JOBS) --target all evo_loadgen
	@echo "release build: ./$(RELEASE_BUILD)/evo"

run: build
	./$(BUILD)/evo examples/tour.lua

test: $(BUILD)/build.ninja
	@scripts/install-deps test
	cmake --build $(BUILD) -j $(JOBS) --target all evo_loadgen
	@scripts/run-tests $(BUILD)

$(ASAN_BUILD)/build.ninja:
	@scripts/install-deps asan
	CC=clang CXX=clang++ cmake -S . -B $(ASAN_BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Debug -DEVO_SANITIZE=ON

test-asan: $(ASAN_BUILD)/build.ninja
	@scripts/install-deps asan
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target all evo_loadgen
	@EVO_SANITIZED=1 scripts/run-tests $(ASAN_BUILD)

FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60

$(FUZZ_BUILD)/build.ninja:
	@scripts/install-deps fuzz
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEVO_FUZZ=ON -DEVO_TESTS=OFF

# Runs every fuzz target for FUZZ_SECONDS from the corpus in tests/fuzz/corpus.
test-fuzz: $(FUZZ_BUILD)/build.ninja
	@scripts/install-deps fuzz
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target evo_fuzz_http_parser evo_fuzz_http_response_parser \
	  evo_fuzz_ws_protocol evo_fuzz_http_server evo_fuzz_transport evo_fuzz_encoding evo_fuzz_zlib \
	  evo_fuzz_json evo_fuzz_multipart evo_fuzz_cookie evo_fuzz_resp \
	  evo_fuzz_regex \
	  evo_fuzz_pg_text \
	  evo_fuzz_app_archive \
	  evo_fuzz_h2_session \
	  evo_fuzz_loadgen_wire \
	  evo_fuzz_uring_io \
	  evo_fuzz_packed_fields
	@mkdir -p $(FUZZ_BUILD)/corpus/http_parser $(FUZZ_BUILD)/corpus/http_response $(FUZZ_BUILD)/corpus/ws \
	  $(FUZZ_BUILD)/corpus/http_server $(FUZZ_BUILD)/corpus/transport $(FUZZ_BUILD)/corpus/encoding \
	  $(FUZZ_BUILD)/corpus/zlib $(FUZZ_BUILD)/corpus/json $(FUZZ_BUILD)/corpus/multipart $(FUZZ_BUILD)/corpus/cookie \
	  $(FUZZ_BUILD)/corpus/resp $(FUZZ_BUILD)/corpus/regex
	./$(FUZZ_BUILD)/evo_fuzz_http_parser -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  $(FUZZ_BUILD)/corpus/http_parser tests/fuzz/corpus/http_parser
	./$(FUZZ_BUILD)/evo_fuzz_http_response_parser -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  $(FUZZ_BUILD)/corpus/http_response tests/fuzz/corpus/http_response
	./$(FUZZ_BUILD)/evo_fuzz_ws_protocol -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
	  $(FUZZ_BUILD)/corpus/ws tests/fuzz/corpus/ws
	ASAN_OPTIONS=detect_leaks=0:detect_stack_use_after_return=0 ./$(FUZZ_BUILD)/evo_fuzz_http_server \
	  -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=20 -close_fd_mask=2 \
	  $(FUZZ_BUILD)/corpus/http_server tests/fuzz/corpus/http_parser
	./$(FUZZ_BUILD)/evo_fuzz_transport -max_total_time=$(FUZZ_SECONDS) -max_len=1024 -timeout=30 \
	  $(FUZZ_BUILD)/corpus/transport tests/fuzz/corpus/transport
	./$(FUZZ_BUILD)/evo_fuzz_encoding -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  $(FUZZ_BUILD)/corpus/encoding tests/fuzz/corpus/encoding
	./$(FUZZ_BUILD)/evo_fuzz_zlib -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -rss_limit_mb=4096 \
	  $(FUZZ_BUILD)/corpus/zlib tests/fuzz/corpus/zlib
	./$(FUZZ_BUILD)/evo_fuzz_json -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  $(FUZZ_BUILD)/corpus/json tests/fuzz/corpus/json
	./$(FUZZ_BUILD)/evo_fuzz_multipart -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  $(FUZZ_BUILD)/corpus/multipart tests/fuzz/corpus/multipart
	./$(FUZZ_BUILD)/evo_fuzz_cookie -max_total_time=$(FUZZ_SECONDS) -max_len=1024 \
	  $(FUZZ_BUILD)/corpus/cookie tests/fuzz/corpus/cookie
	./$(FUZZ_BUILD)/evo_fuzz_resp -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  $(FUZZ_BUILD)/corpus/resp tests/fuzz/corpus/resp
	./$(FUZZ_BUILD)/evo_fuzz_regex -max_total_time=$(FUZZ_SECONDS) -max_len=512 -timeout=20 \
	  $(FUZZ_BUILD)/corpus/regex tests/fuzz/corpus/regex
	@mkdir -p $(FUZZ_BUILD)/corpus/pg_text
	./$(FUZZ_BUILD)/evo_fuzz_pg_text -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  $(FUZZ_BUILD)/corpus/pg_text tests/fuzz/corpus/pg_text
	@mkdir -p $(FUZZ_BUILD)/corpus/app_archive
	./$(FUZZ_BUILD)/evo_fuzz_app_archive -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  $(FUZZ_BUILD)/corpus/app_archive tests/fuzz/corpus/app_archive
	@mkdir -p $(FUZZ_BUILD)/corpus/h2_session
	./$(FUZZ_BUILD)/evo_fuzz_h2_session -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
	  $(FUZZ_BUILD)/corpus/h2_session tests/fuzz/corpus/h2_session
	@mkdir -p $(FUZZ_BUILD)/corpus/loadgen_wire
	./$(FUZZ_BUILD)/evo_fuzz_loadgen_wire -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  $(FUZZ_BUILD)/corpus/loadgen_wire tests/fuzz/corpus/loadgen_wire
	@mkdir -p $(FUZZ_BUILD)/corpus/uring_io
	./$(FUZZ_BUILD)/evo_fuzz_uring_io -max_total_time=$(FUZZ_SECONDS) -max_len=1024 -timeout=30 \
	  $(FUZZ_BUILD)/corpus/uring_io
	@mkdir -p $(FUZZ_BUILD)/corpus/packed_fields
	./$(FUZZ_BUILD)/evo_fuzz_packed_fields -max_total_time=$(FUZZ_SECONDS) -max_len=1024 \
	  $(FUZZ_BUILD)/corpus/packed_fields
	@echo "fuzzing: no crash, no leak in $(FUZZ_SECONDS) s per target"

bench: build
	@scripts/install-deps bench
	@for b in bench/*.sh; do [ -e "$$b" ] && bash "$$b" ./$(BUILD)/evo; done; true

format:
	clang-format -i $$(git ls-files 'src/*.cpp' 'src/*.h' 'tests/cpp/*.cpp' 'tools/*.cpp')

tidy: $(BUILD)/build.ninja
	clang-tidy -p $(BUILD) $$(git ls-files 'src/*.cpp')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(RELEASE_BUILD)
