# mk/sweep.mk -- the sweep engine, invoked by `make sweep`.
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
all: $(TARGETS)
	@echo "sweep: $(words $(TARGETS)) result sets under $(OUT)/"

define one
$(OUT)/$(call name,$(1))/$(2)/results.csv: $(1) $(BIN)
	@echo "sweep: $(call name,$(1)) / $(2)"
	@$(BIN) run --family $(2) $(if $(METHODS),--methods $(METHODS)) $(if $(filter probe,$(2)),--predictions) -o $(OUT)/$(call name,$(1))/$(2) $(1)
endef
$(foreach d,$(DUMP_FILES),$(foreach f,$(FAMILIES),$(eval $(call one,$(d),$(f)))))
