# mk/sweep.mk -- the sweep engine, invoked by `make sweep` (with
# MPI_RANKS=P its (dump, family) jobs are spread over P ranks, below).
# One target per (dump, method family): OUT/<dump>/<family>/results.csv.
# `make sweep` runs them in parallel (-j per core); a finished target is not redone, so
# an interrupted sweep resumes where it stopped (results are renamed into
# place only when complete).  A target is redone when its dump or the binary
# is newer.  The probe family keeps its per-sample predictions
# (predictions.csv), from which `repbench report` compares the models of one
# dataset pairwise (McNemar, paired bootstrap).
#
# No oversubscription: each job runs with --threads THREADS (the Makefile
# passes the cores divided by the jobs make runs at once), and the jobs
# start longest first (the FIRST families of every dump, the largest dump
# first, then the rest) so that -j packs them and the sweep is bounded by
# its longest job, not by a long job started last.  Every job appends
# "seconds name" to OUT/sweep_times.txt; `make -f mk/sweep.mk times` prints
# them, longest first, against the sweep's wall time.
BIN      ?= bin/repbench
DUMPS    ?=
FAMILIES ?=
METHODS  ?=
OUT      ?= reports/out
THREADS  ?=
FIRST    ?= subspace curve probe

# DUMPS='runs/*.h5' is a pattern: expanded here (make does not glob words);
# a pattern that matches nothing is an error, not an empty sweep.
globby   = $(findstring *,$(1))$(findstring ?,$(1))$(findstring [,$(1))
DUMP_FILES := $(foreach d,$(DUMPS),$(if $(call globby,$(d)),$(or $(sort $(wildcard $(d))),$(error sweep: DUMPS pattern '$(d)' matches no file)),$(d)))

name = $(basename $(notdir $(1)))
# The dumps by size, largest first (ls -S); then the FIRST families of every
# dump before the others.
BY_SIZE := $(if $(DUMP_FILES),$(shell ls -S $(DUMP_FILES) 2>/dev/null))
BY_SIZE := $(BY_SIZE) $(filter-out $(BY_SIZE),$(DUMP_FILES))
ORDERED := $(foreach f,$(FIRST),$(filter $(f),$(FAMILIES))) $(filter-out $(FIRST),$(FAMILIES))
TARGETS := $(foreach f,$(ORDERED),$(foreach d,$(BY_SIZE),$(OUT)/$(call name,$(d))/$(f)/results.csv))

# $(timed_start) COMMAND; $(call timed_end,NAME): append COMMAND's wall
# seconds and NAME to OUT/sweep_times.txt, keep its exit status.
timed_start = t0=$$(date +%s.%N);
timed_end = rc=$$?; awk -v a=$$t0 -v b=$$(date +%s.%N) 'BEGIN { printf "%.1f %s\n", b - a, "$(1)" }' \
  >> $(OUT)/sweep_times.txt; exit $$rc

.PHONY: all
ifeq ($(MPI_RANKS),)
all: $(TARGETS)
	@echo "sweep: $(words $(TARGETS)) result sets under $(OUT)/"
else
# MPI_RANKS=P: the targets become a job list, one `make` of one target per
# line, OUT/sweep_jobs.txt, and P ranks launched by MPIRUN (default Open
# MPI's mpirun; MPIRUN=srun under Slurm) run its lines round-robin
# (mk/sweep_ranks.sh: rank r the lines i = r mod P).  Each job's make skips a
# finished target, so an interrupted sweep resumes as without ranks.
MPIRUN   ?= mpirun -q --oversubscribe
JOBS_FILE := $(OUT)/sweep_jobs.txt
define nl


endef
job_line = $(MAKE) --no-print-directory -f mk/sweep.mk BIN='$(BIN)' OUT='$(OUT)' METHODS='$(strip $(METHODS))' \
  DUMPS='$(strip $(DUMP_FILES))' FAMILIES='$(strip $(FAMILIES))' MPI_RANKS= $(1)
all:
	$(shell mkdir -p $(OUT))$(file >$(JOBS_FILE).tmp,$(foreach t,$(TARGETS),$(call job_line,$(t))$(nl)))
	@mv $(JOBS_FILE).tmp $(JOBS_FILE)
	@echo "sweep: $(words $(TARGETS)) jobs over $(MPI_RANKS) ranks ($(MPIRUN)) -> $(OUT)/"
	@$(MPIRUN) -n $(MPI_RANKS) bash mk/sweep_ranks.sh $(JOBS_FILE)
	@echo "sweep: $(words $(TARGETS)) result sets under $(OUT)/"
endif

define one
$(OUT)/$(call name,$(1))/$(2)/results.csv: $(1) $(BIN)
	@echo "sweep: $(call name,$(1)) / $(2)"
	@mkdir -p $(OUT); $$(timed_start) $(BIN) run --family $(2) $(if $(METHODS),--methods $(METHODS)) $(if $(THREADS),--threads $(THREADS)) $(if $(filter probe,$(2)),--predictions) -o $(OUT)/$(call name,$(1))/$(2) $(1); $$(call timed_end,$(call name,$(1))/$(2))
endef
$(foreach d,$(DUMP_FILES),$(foreach f,$(FAMILIES),$(eval $(call one,$(d),$(f)))))

# The jobs' seconds, longest first, against the wall time since
# OUT/sweep_times.txt was started (the sweep's first line); the weight jobs
# (rules_*.mk) by their run.json "seconds".
.PHONY: times
times:
	@for j in $(OUT)/weights*/run.json; do [ -f "$$j" ] && [ "$$j" -nt $(OUT)/.sweep_start ] && \
	  sed -n 's/^  "seconds": \([0-9.]*\),/\1/p' "$$j" | awk -v n="$$(basename $$(dirname $$j))" '{ printf "%.1f %s (run.json)\n", $$1, n }' >> $(OUT)/sweep_times.txt; done; \
	wall=$$(awk -v a=$$(cat $(OUT)/.sweep_start) -v b=$$(date +%s.%N) 'BEGIN { printf "%.1f", b - a }'); \
	sort -rn $(OUT)/sweep_times.txt | awk -v w=$$wall -v t='$(THREADS)' 'NR == 1 { top = $$1; name = $$2 } { s += $$1; n++; if (NR <= 8) printf "sweep:   %7.1f s  %s\n", $$1, $$2 } \
	  END { printf "sweep: %d jobs, %.1f job-seconds; longest %s %.1f s; wall %.1f s (= %.2f x the longest; --threads %s per job)\n", n, s, name, top, w, w / top, t == "" ? "default" : t }'
