# mk/sweep.mk -- the sweep engine, invoked by `make sweep`.
# One target per (dump, method family): OUT/<dump>/<family>/results.csv.
# `make sweep` runs them in parallel (-j per core); a finished target is not redone, so
# an interrupted sweep resumes where it stopped (results are renamed into
# place only when complete).  A target is redone when its dump or the binary
# is newer.
BIN      ?= bin/repbench
DUMPS    ?=
FAMILIES ?=
METHODS  ?=
OUT      ?= reports/out

name = $(basename $(notdir $(1)))
TARGETS := $(foreach d,$(DUMPS),$(foreach f,$(FAMILIES),$(OUT)/$(call name,$(d))/$(f)/results.csv))

.PHONY: all
all: $(TARGETS)
	@echo "sweep: $(words $(TARGETS)) result sets under $(OUT)/"

define one
$(OUT)/$(call name,$(1))/$(2)/results.csv: $(1) $(BIN)
	@echo "sweep: $(call name,$(1)) / $(2)"
	@$(BIN) run --family $(2) $(if $(METHODS),--methods $(METHODS)) -o $(OUT)/$(call name,$(1))/$(2) $(1)
endef
$(foreach d,$(DUMPS),$(foreach f,$(FAMILIES),$(eval $(call one,$(d),$(f)))))
