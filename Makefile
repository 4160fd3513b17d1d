# berth — build, run and test.
#
#   make                  build build/berth-api, build/berth-worker, build/berthctl
#   make SANITIZE=address,undefined   sanitizer build (into build/san-address-undefined)
#   make run              set up everything and run the local stack in the foreground
#   make start|stop|status   the same stack in the background
#   make test             unit + integration tests against real services
#   make fuzz             build the libFuzzer targets (clang)
#   make bench            run the benchmarks in tests/bench/ (figures, not pass/fail)

CC       ?= cc
SANITIZE ?=
# A sanitizer build gets a directory of its own unless one is named: the
# plain objects in build/ would otherwise be reused as they are.
comma := ,
ifneq ($(SANITIZE),)
BUILD    ?= build/san-$(subst $(comma),-,$(SANITIZE))
endif
BUILD    ?= build
OPT      ?= -O2

WARN   = -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes -Wwrite-strings \
         -Wformat=2 -Wundef -Wshadow -Wvla -Wno-unused-parameter -Werror
CFLAGS_ALL = -std=gnu11 $(OPT) -g $(WARN) -Iinclude -I/usr/include/postgresql -D_GNU_SOURCE -MMD -MP \
         -fstack-protector-strong -D_FORTIFY_SOURCE=2 $(CFLAGS)
LDFLAGS_ALL = -Wl,-z,relro,-z,now $(LDFLAGS)
ifneq ($(SANITIZE),)
  OPT = -O1
  CFLAGS_ALL += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS_ALL += -fsanitize=$(SANITIZE)
endif

LIBS_COMMON = -ljansson -lcrypt -lcrypto
LIBS_API    = -lfcgi -lpq -lhiredis -lpthread
LIBS_WORKER = -lev -lcurl -lpq -lhiredis
LIBS_CLI    = -lcurl

COMMON_SRC = $(wildcard src/common/*.c)
API_SRC    = $(wildcard src/api/*.c)
WORKER_SRC = $(wildcard src/worker/*.c)
CLI_SRC    = $(wildcard src/cli/*.c)
UNIT_SRC   = $(wildcard tests/unit/test_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
COMMON_OBJ = $(call obj,$(COMMON_SRC))
API_OBJ    = $(call obj,$(API_SRC))
WORKER_OBJ = $(call obj,$(WORKER_SRC))
CLI_OBJ    = $(call obj,$(CLI_SRC))
# Unit tests link the api/worker modules they test, minus the mains.
API_LIB_OBJ    = $(filter-out $(BUILD)/obj/src/api/main.o,$(API_OBJ))
WORKER_LIB_OBJ = $(filter-out $(BUILD)/obj/src/worker/main.o,$(WORKER_OBJ))
UNIT_BIN   = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

all: $(BUILD)/berth-api $(BUILD)/berth-worker $(BUILD)/berthctl

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/berth-api: $(API_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_API) $(LIBS_COMMON)

$(BUILD)/berth-worker: $(WORKER_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_WORKER) $(LIBS_COMMON)

$(BUILD)/berthctl: $(CLI_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_CLI) $(LIBS_COMMON)

# berthctl's transport, API helpers and output, without its commands and main.
CLI_LIB_OBJ = $(call obj,src/cli/http.c src/cli/api.c src/cli/output.c)
$(BUILD)/tests/test_cli: $(BUILD)/obj/tests/unit/test_cli.o $(COMMON_OBJ) $(CLI_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_CLI) $(LIBS_COMMON)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(COMMON_OBJ) $(API_LIB_OBJ) $(WORKER_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_API) $(LIBS_WORKER) $(LIBS_CLI) $(LIBS_COMMON)

unit: $(UNIT_BIN)

# Fuzz targets: clang + libFuzzer, each tests/fuzz/fuzz_*.c linked with common + api modules.
FUZZ_SRC = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN = $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
FUZZ_FLAGS = -std=gnu11 -g -O1 -Iinclude -I/usr/include/postgresql -Isrc -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined
$(BUILD)/fuzz/%: tests/fuzz/%.c $(COMMON_SRC) $(filter-out src/api/main.c,$(API_SRC)) $(filter-out src/worker/main.c,$(WORKER_SRC))
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -o $@ $^ $(LIBS_API) $(LIBS_WORKER) $(LIBS_COMMON)
fuzz: $(FUZZ_BIN)

# Benchmarks: tests/bench/*.c, each linked like a unit test; run by tests/bench/run.sh.
BENCH_SRC = $(wildcard tests/bench/*.c)
BENCH_BIN = $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(COMMON_OBJ) $(API_LIB_OBJ) $(WORKER_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_API) $(LIBS_WORKER) $(LIBS_CLI) $(LIBS_COMMON)

bench: deps $(BENCH_BIN)
	@tests/bench/run.sh

deps:
	@scripts/deps.sh

run: deps all
	@scripts/stack.sh run

start: deps all
	@scripts/stack.sh start

stop:
	@scripts/stack.sh stop

status:
	@scripts/stack.sh status

test: deps
	@tests/run.sh

format:
	clang-format -i $(COMMON_SRC) $(API_SRC) $(WORKER_SRC) $(CLI_SRC) include/berth/*.h

clean:
	rm -rf $(BUILD)

.PHONY: all unit fuzz bench deps run start stop status test format clean

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
