# repbench -- plain GNU Makefile (STYLE.md 2.10).
#
#   make            build bin/repbench
#   make sweep      every method on every dump -> reports/out/ (see mk/sweep.mk)
#   make plots      figures for reports/out/
#   make theory     every analytic check
#   make check      unit tests (seconds)
#   make test       unit tests, cross-checks against scikit-learn/SciPy, sanitizer run, fuzzers
#   make bench      speed and memory against peers, same data, one run
#   SAN=1           AddressSanitizer + UndefinedBehaviorSanitizer build (in build-san/)

CC       ?= cc
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -MMD -MP -pthread
CPPFLAGS += -I. -D_GNU_SOURCE $(shell pkg-config --cflags gsl hdf5 openblas 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs-only-L hdf5 2>/dev/null) -lgsl -lopenblas -llapacke -lhdf5 -lcsv -lm -pthread
PYTHON   ?= /usr/bin/python3

ifeq ($(SAN),1)
BUILD    := build-san
CFLAGS   += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
else
BUILD    := build
endif
# MPI=1: bin/repbench-mpi, built with Open MPI's mpicc and -DRB_MPI in
# build-mpi/ (README "Running on a cluster"); the default build needs no MPI.
ifeq ($(MPI),1)
BUILD    := $(BUILD:build%=build-mpi%)
CC       := mpicc
CPPFLAGS += -DRB_MPI
endif
ifeq ($(WERROR),1)
CFLAGS   += -Werror
endif

LIBSRC   := $(sort $(wildcard core/*.c datasets/*.c metrics/*.c theory/*.c reports/*.c suite/*.c))
LIBSRC   := $(filter-out suite/main.c,$(LIBSRC))
LIBOBJ   := $(LIBSRC:%.c=$(BUILD)/%.o)
TESTSRC  := $(sort $(wildcard tests/test_*.c))
TESTBIN  := $(TESTSRC:tests/%.c=$(BUILD)/tests/%)
BIN      := $(if $(filter 1,$(SAN)),$(BUILD)/repbench,bin/repbench)$(if $(filter 1,$(MPI)),-mpi)

.SECONDARY:
.PHONY: all deps check clitest test test-san xcheck sweep plots theory bench clean samples
all: deps $(BIN)

# ---------------------------------------------------------------- packages
DEB_PKGS := build-essential pkg-config libgsl-dev libopenblas-dev liblapacke-dev \
            libhdf5-dev libcsv-dev gnuplot-nox python3-sklearn python3-scipy \
            python3-h5py python3-numpy python3-torch dataset-fashion-mnist \
            clang libclang-rt-14-dev chromium libopenmpi-dev openmpi-bin
deps:
	@missing=$$(dpkg-query -W -f='$${Package} $${Status}\n' $(DEB_PKGS) 2>/dev/null \
	    | awk '$$NF!="installed"{print $$1}'; \
	  for p in $(DEB_PKGS); do dpkg-query -W $$p >/dev/null 2>&1 || echo $$p; done); \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	if [ -n "$$(echo $$missing | tr -d ' ')" ]; then \
	  echo "deps: installing $$missing"; \
	  if [ "$$(id -u)" != 0 ]; then SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# ------------------------------------------------------------------- build
# The git commit recorded in run.json: regenerated when it changes.
GITREV := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
$(BUILD)/gitrev.h: FORCE
	@mkdir -p $(@D)
	@echo '#define RB_GIT "$(GITREV)"' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
# Every object that prints it (run.json, weights' run.json).  FORCE is
# phony: under .SECONDARY a plain empty FORCE rule is never remade.
GITREV_USERS := $(BUILD)/suite/cmd_run.o $(BUILD)/suite/cmd_weights.o
$(GITREV_USERS): $(BUILD)/gitrev.h
$(GITREV_USERS): CPPFLAGS += -include $(BUILD)/gitrev.h
.PHONY: FORCE
FORCE:

$(BIN): $(LIBOBJ) $(BUILD)/suite/main.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# Tests link against an archive so each pulls in only the objects it uses.
$(BUILD)/librepbench.a: $(LIBOBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/check.o $(BUILD)/librepbench.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/check.o: tests/check.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

-include $(LIBOBJ:.o=.d) $(BUILD)/suite/main.d $(TESTSRC:tests/%.c=$(BUILD)/tests/%.d)

# ------------------------------------------------------------------- tests
# Unit tests: one small executable per module, each prints "N passed, M failed".
check: deps $(TESTBIN)
	@fail=0; for t in $(TESTBIN); do \
	  echo "== $$t"; (cd . && RB_BIN=$(BIN) ./$$t) || fail=1; \
	done; exit $$fail

# CLI tests (refusals, outputs) on their own: run again under the sanitizers.
clitest: deps $(BIN)
	@fail=0; for s in $(sort $(wildcard tests/cli_*.sh)); do \
	  echo "== $$s"; RB_BIN=$(BIN) PYTHON=$(PYTHON) bash $$s || fail=1; \
	done; exit $$fail

# The sanitizer pass re-runs the unit tests and the CLI tests under ASan+UBSan.
test-san: deps
	$(MAKE) --no-print-directory SAN=1 check clitest

# Cross-checks against Debian's scikit-learn / SciPy and CLI tests (tests/*.sh).
xcheck: deps $(BIN)
	@fail=0; for s in $(sort $(wildcard tests/cli_*.sh tests/xcheck_*.sh)); do \
	  echo "== $$s"; RB_BIN=$(BIN) PYTHON=$(PYTHON) bash $$s || fail=1; \
	done; exit $$fail

test: deps
	$(MAKE) --no-print-directory check
	$(MAKE) --no-print-directory xcheck
	$(MAKE) --no-print-directory test-san
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10
	@echo "make test: all passed"

# ------------------------------------------------------------------- sweep
DUMPS   ?=
CKPTS   ?=
METHODS ?=
OUT     ?= reports/out
SAMPLES := datasets/sample/gmm_small.h5 datasets/sample/gmm_wide.h5
SWEEP_EXTRA :=

samples: $(SAMPLES)
# The CLI tests that compare whole runs (cli_mpi.sh) read the sample dumps
# and checkpoints: built first (in the sanitizer pass they exist already).
ifneq ($(SAN),1)
xcheck clitest: $(SAMPLES)
endif
# The samples carry every optional array (shift split, tokens on gmm_small,
# text, groups) so that the sweep runs every method; regenerated when these
# lines change (the Makefile is a prerequisite).
datasets/sample/gmm_small.h5: Makefile | bin/repbench
	@mkdir -p $(@D)
	bin/repbench gen gmm --seed 1 --classes 10 --dim 64 --layers 6 --n-train 3000 --n-test 1000 --n-ood 500 --sep1 2 --sd1 0.8 --n-shift 500 --tokens 6 --text --groups --model gmm_small -o $@
datasets/sample/gmm_wide.h5: Makefile | bin/repbench
	@mkdir -p $(@D)
	bin/repbench gen gmm --seed 2 --classes 20 --dim 256 --layers 4 --n-train 4000 --n-test 2000 --n-ood 1000 --sep1 2.5 --sd1 0.7 --n-shift 1000 --text --groups --model gmm_wide -o $@

# The (dump, family) targets, the theory checks and the weight methods are
# one parallel make: SWEEP_JOBS of them at a time (default: the core count)
# unless make was given its own -j.
SWEEP_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
SWEEP_J = $(if $(filter -j%,$(MAKEFLAGS)),,-j$(SWEEP_JOBS))
# No oversubscription: each job gets the cores divided by the jobs run at
# once (make's own -jN, else SWEEP_JOBS), at least 1, as its --threads
# (OPENBLAS_NUM_THREADS for the jobs of mk/rules_*.mk); the jobs' seconds
# are printed at the end (mk/sweep.mk, target times).
SWEEP_NJ = $(or $(patsubst -j%,%,$(filter -j%,$(MAKEFLAGS))),$(SWEEP_JOBS))
SWEEP_THREADS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); t=$$((n / $(SWEEP_NJ))); echo $$((t > 0 ? t : 1)))
sweep_timed = t0=$$(date +%s.%N); $(2); rc=$$?; \
  awk -v a=$$t0 -v b=$$(date +%s.%N) 'BEGIN { printf "%.1f %s\n", b - a, "$(1)" }' >> $(OUT)/sweep_times.txt; exit $$rc
sweep: deps bin/repbench $(if $(DUMPS),,samples)
	@bad=$$(bin/repbench list | awk -v m='$(METHODS)' 'BEGIN { n = split(m, w, ",") } NR > 1 && NF >= 2 { k[$$1] = 1 } \
	  END { for (i = 1; i <= n; i++) if (!(w[i] in k)) printf "%s ", w[i] }'); \
	if [ -n "$$bad" ]; then echo "sweep: METHODS names $$bad- not a method (bin/repbench list shows them)"; exit 2; fi
	@mkdir -p $(OUT) && rm -f $(OUT)/sweep_times.txt && date +%s.%N > $(OUT)/.sweep_start
	@OPENBLAS_NUM_THREADS=$(SWEEP_THREADS) $(MAKE) --no-print-directory $(SWEEP_J) $(SWEEP_EXTRA) sweep-features \
	  OUT='$(OUT)' METHODS='$(METHODS)' DUMPS='$(DUMPS)' CKPTS='$(CKPTS)'
	@$(call sweep_timed,plots,$(MAKE) --no-print-directory plots OUT='$(OUT)')
	@$(MAKE) --no-print-directory -f mk/sweep.mk times OUT='$(OUT)' THREADS=$(SWEEP_THREADS)

.PHONY: sweep-features
sweep-features:
	@$(MAKE) --no-print-directory -f mk/sweep.mk OUT='$(OUT)' THREADS=$(SWEEP_THREADS) METHODS="$$($(SWEEP_FEATURE_METHODS))" \
	  DUMPS='$(if $(DUMPS),$(DUMPS),$(SAMPLES))' FAMILIES="$$($(SWEEP_FAMILIES))"

# The feature methods named in METHODS (weight methods go to the weight
# sweep; a name that is neither is passed on, so `run` refuses it clearly).
SWEEP_FEATURE_METHODS = bin/repbench list | awk -v m='$(METHODS)' 'BEGIN { n = split(m, w, ","); s = "" } \
  NR > 1 && NF == 0 { body = 1 } NR > 1 && NF >= 2 { fam[$$1] = body ? "other" : $$2 } \
  END { for (i = 1; i <= n; i++) if (fam[w[i]] != "other") { printf "%s%s", s, w[i]; s = "," } }'

# The feature families to sweep: all, or those of the methods in METHODS
# (a family none of whose methods is named is not run).
SWEEP_FAMILIES = bin/repbench list | awk -v m='$(METHODS)' 'BEGIN { m = "," m "," } NR > 1 && NF == 0 { exit } \
  NR > 1 && (m == ",," || index(m, "," $$1 ",")) && !seen[$$2]++ { print $$2 }'

plots: deps bin/repbench
	@if bin/repbench list --subcommands | grep -qx report; then bin/repbench report $(OUT); \
	 else echo "plots: the report subcommand is not built yet"; fi

# Every analytic check at its default sizes (a few minutes); exits non-zero
# when a claim fails.  `make sweep` includes it once (sweep-theory), redone
# only when the binary changes.
theory: deps bin/repbench
	bin/repbench theory -o $(OUT)/theory

SWEEP_EXTRA += sweep-theory
.PHONY: sweep-theory
sweep-theory: $(if $(METHODS)$(DUMPS),,$(OUT)/theory/results.csv)
$(OUT)/theory/results.csv: bin/repbench
	@echo "sweep: theory checks -> $(OUT)/theory/"
	@mkdir -p $(OUT) && ($(call sweep_timed,theory,bin/repbench theory --threads $(SWEEP_THREADS) -o $(OUT)/theory > $(OUT)/theory.log)) || { cat $(OUT)/theory.log; exit 1; }
	@tail -n 1 $(OUT)/theory.log

bench: deps bin/repbench
	@for s in $(sort $(wildcard tests/bench_*.sh)); do echo "== $$s"; RB_BIN=bin/repbench PYTHON=$(PYTHON) bash $$s || exit 1; done

# Extra rules of the families (sample checkpoints, weight sweeps, ...).
-include $(sort $(wildcard mk/rules_*.mk))

clean:
	rm -rf build build-san build-mpi build-mpi-san build-fuzz bin

# ------------------------------------------------------------------- fuzz
# libFuzzer targets (clang, ASan+UBSan): the dump reader, the safetensors
# reader, the results-CSV reader and the option parser.  `make fuzz` builds
# them in build-fuzz/ and runs each for FUZZ_SECONDS on a copy of its
# committed seed corpus (tests/fuzz/<target>/); a crash stops make with the
# reproducer in build-fuzz/.  Needs clang and libclang-rt (libFuzzer).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_FLAGS   := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -std=c11 -D_GNU_SOURCE -I. \
                $(shell pkg-config --cflags hdf5 gsl openblas 2>/dev/null)
FUZZ_LIBS    := $(shell pkg-config --libs-only-L hdf5 2>/dev/null) -lhdf5 -lcsv -lgsl -lopenblas -llapacke -lm -pthread
FUZZ_SRC_dump        := datasets/dump.c core/core.c
FUZZ_SRC_safetensors := datasets/weights.c core/core.c
FUZZ_SRC_csvread     := reports/csvread.c core/core.c
FUZZ_SRC_opts        := suite/cli.c core/core.c
FUZZ_TARGETS := dump safetensors csvread opts
.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
build-fuzz/fuzz_%: tests/fuzz_%.c FORCE
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) $< $(FUZZ_SRC_$*) $(FUZZ_LIBS) -o $@
fuzz: fuzz-build
	@echo leak:libhdf5 > build-fuzz/lsan.supp
	@for t in $(FUZZ_TARGETS); do \
	  rm -rf build-fuzz/corpus_$$t; mkdir -p build-fuzz/corpus_$$t; cp tests/fuzz/$$t/* build-fuzz/corpus_$$t/; \
	  echo "== fuzz_$$t ($(FUZZ_SECONDS) s)"; \
	  (cd build-fuzz && RB_SCAN_SECONDS=2 LSAN_OPTIONS=suppressions=lsan.supp ASAN_OPTIONS=allocator_may_return_null=1 \
	    ./fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
	    corpus_$$t 2>fuzz_$$t.log) || { tail -n 40 build-fuzz/fuzz_$$t.log; exit 1; }; \
	  grep -E "stat::number_of_executed_units|Done [0-9]+ runs" build-fuzz/fuzz_$$t.log | tail -n 1; \
	done
