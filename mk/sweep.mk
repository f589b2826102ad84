# mk/sweep.mk -- the sweep engine, invoked by `make sweep` (with
# MPI_RANKS=P its (dump, family) jobs are spread over P ranks, below).
# One target per (dump, method family): OUT/<dump>/<family>/results.csv.
# `make sweep` runs them in parallel (-j per core); a finished target is not redone, so
# an interrupted sweep resumes where it stopped (results are renamed into
# place only when complete).  A target is redone when its dump or the binary
# is newer.  The probe family keeps its per-sample predictions
# (predictions.csv), from which `repbench report` compares the models of one
# dataset pairwise (McNemar, paired bootstrap).
BIN      ?= bin/repbench
DUMPS    ?=
FAMILIES ?=
METHODS  ?=
OUT      ?= reports/out

# DUMPS='runs/*.h5' is a pattern: expanded here (make does not glob words);
# a pattern that matches nothing is an error, not an empty sweep.
globby   = $(findstring *,$(1))$(findstring ?,$(1))$(findstring [,$(1))
DUMP_FILES := $(foreach d,$(DUMPS),$(if $(call globby,$(d)),$(or $(sort $(wildcard $(d))),$(error sweep: DUMPS pattern '$(d)' matches no file)),$(d)))

name = $(basename $(notdir $(1)))
TARGETS := $(foreach d,$(DUMP_FILES),$(foreach f,$(FAMILIES),$(OUT)/$(call name,$(d))/$(f)/results.csv))

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
	@$(BIN) run --family $(2) $(if $(METHODS),--methods $(METHODS)) $(if $(filter probe,$(2)),--predictions) -o $(OUT)/$(call name,$(1))/$(2) $(1)
endef
$(foreach d,$(DUMP_FILES),$(foreach f,$(FAMILIES),$(eval $(call one,$(d),$(f)))))
