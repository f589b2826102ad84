# mk/rules_weights.mk -- sample checkpoints and the weight sweep (issue 4),
# included by the Makefile.
#
#   make samples         also writes datasets/sample/ckpt_*.{safetensors,h5}
#   make sweep           also runs `sweep-weights`: every weight method on the
#                        sample checkpoints (or on CKPTS='a.safetensors b.h5 ...',
#                        the first being the pre-trained one for taskvec)
#                        -> $(OUT)/weights/results.csv and its side files.
# The soup needs a feature dump for the heads: WEIGHT_FEATURES (default the
# sample gmm_small.h5 whose deepest layer the sample heads were built on).

comma           := ,
empty           :=
space           := $(empty) $(empty)
WEIGHT_DIR      := datasets/sample
WEIGHT_SAMPLES  := $(WEIGHT_DIR)/ckpt_pre.safetensors $(WEIGHT_DIR)/ckpt_ft1.safetensors \
                   $(WEIGHT_DIR)/ckpt_ft2.h5 $(WEIGHT_DIR)/ckpt_ft3.safetensors \
                   $(WEIGHT_DIR)/ckpt_init.h5
WEIGHT_FEATURES ?= $(if $(CKPTS),,$(WEIGHT_DIR)/gmm_small.h5)
WEIGHT_METHODS  := filters spectra sparsity taskvec soup
WEIGHT_SEL      := $(filter $(WEIGHT_METHODS),$(subst $(comma), ,$(METHODS)))
WEIGHT_CKPTS    := $(if $(CKPTS),$(CKPTS),$(WEIGHT_SAMPLES))
WEIGHT_FEAT_ARG := $(if $(WEIGHT_FEATURES),$(if $(or $(if $(WEIGHT_SEL),,1),$(filter soup,$(WEIGHT_SEL))),--features $(WEIGHT_FEATURES)))
# METHODS naming only feature methods skips the weight sweep.
WEIGHT_SKIP     := $(and $(METHODS),$(if $(WEIGHT_SEL),,1))

samples: $(WEIGHT_SAMPLES)

# Sample checkpoints with known answers (datasets/gen_weights.c): pre-trained
# smooth filters with 12.5 % degenerate ones and a power-law proj.weight
# (alpha = 3), PyTorch default init, and three fine-tunes with rank-2 deltas.
$(WEIGHT_DIR)/ckpt_pre.safetensors: $(WEIGHT_DIR)/gmm_small.h5 | bin/repbench
	bin/repbench gen weights --kind pre --seed 1 --degenerate 0.125 --features $< --model pre -o $@
$(WEIGHT_DIR)/ckpt_init.h5: $(WEIGHT_DIR)/gmm_small.h5 | bin/repbench
	bin/repbench gen weights --kind init --seed 1 --features $< --model init -o $@
$(WEIGHT_DIR)/ckpt_ft1.safetensors: $(WEIGHT_DIR)/gmm_small.h5 | bin/repbench
	bin/repbench gen weights --kind ft --seed 1 --task 1 --rank 2 --degenerate 0.125 --features $< --model ft1 -o $@
$(WEIGHT_DIR)/ckpt_ft2.h5: $(WEIGHT_DIR)/gmm_small.h5 | bin/repbench
	bin/repbench gen weights --kind ft --seed 1 --task 2 --rank 2 --degenerate 0.125 --features $< --model ft2 -o $@
$(WEIGHT_DIR)/ckpt_ft3.safetensors: $(WEIGHT_DIR)/gmm_small.h5 | bin/repbench
	bin/repbench gen weights --kind ft --seed 1 --task 3 --rank 2 --degenerate 0.125 --features $< --model ft3 -o $@

# The weight sweep: one target, redone when a checkpoint or the binary is newer.
SWEEP_EXTRA += sweep-weights
.PHONY: sweep-weights
sweep-weights: $(if $(WEIGHT_SKIP),,$(OUT)/weights/results.csv)
	@echo "sweep: weights $(if $(WEIGHT_SKIP),skipped (no weight method in METHODS),-> $(OUT)/weights/)"

$(OUT)/weights/results.csv: $(WEIGHT_CKPTS) $(WEIGHT_FEATURES) bin/repbench
	@echo "sweep: weights on $(words $(WEIGHT_CKPTS)) checkpoint(s)"
	@bin/repbench weights $(if $(WEIGHT_SEL),--methods $(subst $(space),$(comma),$(WEIGHT_SEL))) \
	  $(WEIGHT_FEAT_ARG) -o $(OUT)/weights $(WEIGHT_CKPTS)

# cli_mpi.sh runs `weights` on these (see the Makefile's xcheck line).
ifneq ($(SAN),1)
xcheck clitest: $(WEIGHT_SAMPLES)
endif
