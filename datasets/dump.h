/*
 * dump.h -- feature dumps (DESIGN.md section 2, format version 1): open,
 * validate, read rows as float, write; and the synthetic generators.
 *
 *   /labels/<split>            int32|int64 [N]
 *   /features/<split>/<layer>  float16|32|64 [N, D]  (attr depth=int optional)
 *   /logits/<split>, /text/<name>, /tokens/<split>/<layer>, /classes  optional
 *   /groups/<split>      int [N], group ids in [0, 2^24)      optional
 *   /text_pairs/<split>  float [N, D], one text embedding per sample  optional
 *
 * The source's read_array reads any of these by path; a path ending in
 * "[r0:r1]" reads rows [r0, r1) of dimension 0 only (token arrays are read
 * in row chunks: "/tokens/train/blk11[0:256]"); integer datasets are read
 * only under /groups/ (converted to float, exact below 2^24).
 *   root attrs (optional): format="repbench-features", version=1, model, dataset,
 *   layers (string list giving the layer order when no depth attributes)
 *
 * Layer order: depth attribute on every layer if present; else the root
 * `layers` attribute; else natural sort (layer2 before layer10).
 *
 * Validation (rb_dump_open + rb_dump_check_values) refuses, with one message
 * "FILE: DATASET: problem" and RB_EINVAL/RB_EIO, at least: not HDF5 or
 * truncated; missing /features or /labels for train/test; rank != 2; N
 * mismatch between features and labels; different D for a layer across
 * splits; a split without some layer; labels < 0; a class absent from train;
 * NaN/Inf in features; an empty split; a format/version attribute present
 * but different.
 */
#ifndef RB_DUMP_H
#define RB_DUMP_H

#include "core/rb.h"

typedef struct rb_dump rb_dump; /* opaque; owns the HDF5 handle and labels */

/* Labels must be below this bound (a larger label is refused as implausible:
 * class-count arrays are sized by the largest label). */
#define RB_DUMP_MAX_CLASSES (1 << 20)
/* rb_dump_check_values reads at most this many rows, and at most this many
 * floats, per chunk (64k rows; 64 MiB of floats for wide layers). */
#define RB_DUMP_SCAN_ROWS 65536
#define RB_DUMP_SCAN_ELEMS ((size_t)1 << 24)

/* Open and validate the structure of a feature dump (metadata and labels;
 * feature values are checked by rb_dump_check_values).  require_train_test:
 * refuse a dump without labeled train and test splits (probes need them).
 * On success *out is owned by the caller (rb_dump_close). */
int rb_dump_open(const char *path, int require_train_test, rb_dump **out,
                 rb_err *e);

/* Scan every feature dataset in chunks and refuse NaN/Inf. */
int rb_dump_check_values(rb_dump *d, rb_err *e);

/* The same, but the cells with want[s * nlayers + l] set (split s, layer
 * l, in the source's order) are read whole, scanned, and on success handed
 * over in keep[s * nlayers + l] (the caller frees them; NULL when memory
 * was short and the cell was scanned in chunks instead).  A run keeps the
 * cells it computes on first, so those are read once, not twice. */
int rb_dump_check_values_keep(rb_dump *d, const unsigned char *want, float **keep, rb_err *e);

void rb_dump_close(rb_dump *d); /* NULL is a no-op */

/* The reader as a source for methods (valid until rb_dump_close). */
const rb_source *rb_dump_source(const rb_dump *d);

const char *rb_dump_model(const rb_dump *d);
const char *rb_dump_dataset(const rb_dump *d);

/* Print the layout, shapes, dtypes, classes with counts and every problem
 * found (does not stop at the first).  Returns RB_OK when no problem. */
int rb_dump_inspect(const char *path, void *fp /* FILE* */, rb_err *e);

/* ------------------------------------------------------------------ writer */

typedef struct rb_dumpw rb_dumpw; /* opaque */

/* Create (truncate) a dump at path; attrs format/version/model/dataset set.
 * The file is written to path.tmp and renamed by rb_dumpw_close. */
int rb_dumpw_create(const char *path, const char *model, const char *dataset,
                    rb_dumpw **out, rb_err *e);
/* Write /features/<split>/<layer> (float32, n x d) with attribute depth
 * (depth < 0: no attribute). */
int rb_dumpw_features(rb_dumpw *w, const char *split, const char *layer,
                      const float *x, size_t n, size_t d, int depth, rb_err *e);
/* The same in row blocks, so a writer never holds a whole split: begin
 * creates the dataset (n x d), put writes rows [r0, r0+nr) from x (nr x d),
 * end closes it.  One features dataset may be open at a time. */
int rb_dumpw_features_begin(rb_dumpw *w, const char *split, const char *layer,
                            size_t n, size_t d, int depth, rb_err *e);
int rb_dumpw_features_put(rb_dumpw *w, size_t r0, size_t nr, const float *x,
                          rb_err *e);
int rb_dumpw_features_end(rb_dumpw *w, rb_err *e);
/* Write /labels/<split> as int32. */
int rb_dumpw_labels(rb_dumpw *w, const char *split, const int32_t *y, size_t n,
                    rb_err *e);
/* Write /groups/<split> as int32 (group ids). */
int rb_dumpw_groups(rb_dumpw *w, const char *split, const int32_t *g, size_t n, rb_err *e);
/* Write any float32 array at an absolute path (e.g. "/logits/test"). */
int rb_dumpw_array(rb_dumpw *w, const char *path, const float *x, int rank,
                   const size_t *dims, rb_err *e);
/* Finish: close and rename into place.  Frees w even on error; when an
 * earlier write failed, PATH.tmp is removed, nothing is renamed and the
 * error is returned (e keeps the earlier message when it carries one). */
int rb_dumpw_close(rb_dumpw *w, rb_err *e);

/* -------------------------------------------------------------- generators */

typedef struct {
    int k;            /* classes (default 10) */
    size_t d;         /* feature dimension per layer (default 64) */
    int layers;       /* number of layers (default 4) */
    size_t n_train;   /* per split (default 2000) */
    size_t n_test;    /* (default 1000) */
    size_t n_ood;     /* ood_far split size (default 500, 0 = none) */
    double sep0, sep1;  /* class separation at first/last layer (0.5, 3.0) */
    double sd0, sd1;    /* within-class sd at first/last layer (1.5, 0.5) */
    double logit_scale; /* > 0: write /logits/<split> of the Bayes head on
                           the last layer times this factor (default 2: an
                           over-confident head whose NLL-optimal temperature
                           is 2); 0: no logits */
    size_t n_shift;   /* labeled shift_noise split size (0 = none): the ID
                         classes with 1.5x the noise and a fixed offset of
                         norm sd(l) per layer */
    int tokens;       /* T > 0: /tokens/{train,test}/<layer> [N, T, d] of
                         the last two layers: token 0 (CLS) = the feature
                         row, tokens 1..T-1 = the row plus N(0, sd(l)^2 I) */
    int text;         /* 1: /text/gmm [k, d] (class directions plus
                         N(0, 0.3^2 / d) per entry), /text/gmm_prompts
                         [k, 3, d], /text_pairs/test [n_test, d] (each
                         last-layer test row plus N(0, sd(L)^2 I)) */
    int groups;       /* 1: /groups/{train,test,shift_noise}: 2 a_i + (y_i
                         mod 2), a_i ~ Bernoulli(0.2) (4 groups) */
    double offset;    /* real-shaped features (issue 15; all 0 = off):
                         common offset A added to every coordinate */
    double decay;     /* p > 0: within-class covariance sd^2 Q diag(j^-p) Q^T,
                         Q a seeded random orthonormal basis */
    int relu;         /* 1: max(0, x) last */
    uint64_t seed;
} rb_gen_gmm;

void rb_gen_gmm_defaults(rb_gen_gmm *g);

/* Refuse parameters the generator cannot honour (k < 2, n_train < k, sd <= 0,
 * non-finite sep/sd, ...) with RB_EINVAL and a message naming the option. */
int rb_gen_gmm_check(const rb_gen_gmm *g, rb_err *e);

/* Gaussian mixture dump: class means on random directions scaled by a
 * separation that grows with depth, within-class sd that shrinks; the OOD
 * split is drawn from a mixture with fresh means.  Deterministic in seed.
 * Writes splits train, test (labeled) and ood_far (unlabeled, when n_ood > 0),
 * layers "layer1".."layerL" with depth 1..L, model = model (NULL: the file's
 * base name), dataset = "gmm_k<k>_d<d>".  The exact model is in gen.c. */
int rb_gen_gmm_write(const char *path, const rb_gen_gmm *g, const char *model,
                     rb_err *e);

#endif /* RB_DUMP_H */
