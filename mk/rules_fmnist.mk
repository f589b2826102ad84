# mk/rules_fmnist.mk -- the real trained sample (issue 10), included by the
# Makefile.
#
#   make / make samples  also trains a small CNN on Fashion-MNIST (CPU, seeded,
#                        datasets/sample_fmnist.py, about a minute) and writes,
#                        for its checkpoints at initialisation, after epoch 1
#                        and after epoch 3, the feature dumps
#                        datasets/sample/fmnist_e{0,1,3}.h5 and the weight dumps
#                        datasets/sample/fmnist_ckpt_e{0,1,3}.safetensors.  One
#                        stamp (fmnist.json, written last) stands for them all:
#                        redone only when the script or the exporter changes.
#   make sweep           also runs every feature family on the three dumps
#                        (they join SAMPLES) and `sweep-weights-fmnist`: the
#                        weight methods on the three checkpoints, init first
#                        (taskvec: tau = trained - init), soup heads fc.* on
#                        the final dump -> $(OUT)/weights_fmnist/.
# Needs python3-torch, python3-h5py and dataset-fashion-mnist (Debian).
# Skipped in the sweep when DUMPS or CKPTS name the user's own inputs.

FMNIST_DIR    := datasets/sample
FMNIST_DATA   ?= /usr/share/datasets/fashion-mnist
# Extra options of the script, e.g. FMNIST_ARGS='--n-dump-train 2000' for a
# faster sweep (a change here does not redo the stamp: remove fmnist.json).
FMNIST_ARGS   ?=
FMNIST_TAGS   := e0 e1 e3
FMNIST_STAMP  := $(FMNIST_DIR)/fmnist.json
FMNIST_DUMPS  := $(FMNIST_TAGS:%=$(FMNIST_DIR)/fmnist_%.h5)
FMNIST_CKPTS  := $(FMNIST_TAGS:%=$(FMNIST_DIR)/fmnist_ckpt_%.safetensors)
# Weight methods named in METHODS (this file is read before rules_weights.mk,
# so it computes its own selection).
fm_comma      := ,
fm_space      := $(fm_comma:,=) $(fm_comma:,=)
FMNIST_WSEL   := $(filter filters spectra sparsity taskvec soup,$(subst $(fm_comma), ,$(METHODS)))
FMNIST_SKIP   := $(or $(DUMPS),$(CKPTS),$(and $(METHODS),$(if $(FMNIST_WSEL),,1)))

# SAMPLES is expanded in the sweep-features recipe, after every include.
SAMPLES += $(FMNIST_DUMPS)
# `make` builds only the program (a fresh clone's build stays well under a
# minute); the ~45 s of training is done by `make samples` / `make sweep`.
samples: $(FMNIST_STAMP)

$(FMNIST_STAMP): datasets/sample_fmnist.py datasets/export_torch.py
	@mkdir -p $(@D)
	@echo "samples: training the Fashion-MNIST CNN -> $(FMNIST_DIR)/fmnist_*"
	$(PYTHON) datasets/sample_fmnist.py --data $(FMNIST_DATA) $(FMNIST_ARGS) -o $(@D)
# The dumps are written by the stamp's recipe (fmnist.json last).
$(FMNIST_DUMPS) $(FMNIST_CKPTS): $(FMNIST_STAMP)
	@test -f $@ || { echo "$@: missing although $(FMNIST_STAMP) exists; remove it and rerun make"; exit 1; }

SWEEP_EXTRA += sweep-weights-fmnist
.PHONY: sweep-weights-fmnist
sweep-weights-fmnist: $(if $(FMNIST_SKIP),,$(OUT)/weights_fmnist/results.csv)
	@echo "sweep: Fashion-MNIST weights $(if $(FMNIST_SKIP),skipped,-> $(OUT)/weights_fmnist/)"

$(OUT)/weights_fmnist/results.csv: $(FMNIST_CKPTS) $(FMNIST_DIR)/fmnist_e3.h5 bin/repbench
	@echo "sweep: weights on the $(words $(FMNIST_CKPTS)) Fashion-MNIST checkpoints"
	@bin/repbench weights $(if $(FMNIST_WSEL),--methods $(subst $(fm_space),$(fm_comma),$(FMNIST_WSEL))) \
	  $(if $(or $(if $(FMNIST_WSEL),,1),$(filter soup,$(FMNIST_WSEL))),--features $(FMNIST_DIR)/fmnist_e3.h5) \
	  -o $(OUT)/weights_fmnist $(FMNIST_CKPTS)
