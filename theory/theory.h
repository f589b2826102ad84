/*
 * theory.h -- simulations beside closed-form bounds (`repbench theory`).
 *
 * Each check is a pure function (no FILE*, no printf) that runs a seeded
 * simulation, appends tidy rows (DESIGN.md section 4; the caller fills
 * model="theory" and dataset=<check name>) and, for every claim it tests,
 * one typed claim (rb_theory_claim: approximately equal, at most, at least,
 * within [a, b]), whose pass flag the type computes.  A check returns RB_OK whether its claims pass or not;
 * an error code means it could not run (bad option, no memory, a solver
 * that failed).
 *
 * Options: every check reads its sizes and the knobs that break its
 * assumption on purpose from o->kv (see each check's doc and
 * docs/readme_theory.md); o->seed is the base seed, each check derives its
 * own from it and its name, so the checks are order-independent.
 * fast != 0 selects the small configuration `make test` runs (< 1 min for
 * all checks, also under ASan).
 *
 * The checks (references in each theory/<check>.c):
 *   icl           one-step preconditioned GD vs ridge/Bayes; dMMSE vs ridge
 *   pretrain_gmm  EM pre-training on unlabeled data vs supervised, C/m + C/n
 *   fit           power law with asymptote, bootstrap, extrapolation;
 *                 effective robustness (logit-linear fit)
 *   nc_ufm        neural collapse in the unconstrained-features model and
 *                 the perturbation model
 *   nb_vs_lr      naive Bayes vs logistic regression sample complexity
 *   id_manifolds  intrinsic-dimension estimators on known manifolds
 */
#ifndef RB_THEORY_H
#define RB_THEORY_H

#include "core/rb.h"
#include "metrics/curve.h" /* rb_powerlaw */

typedef int (*rb_theory_fn)(const rb_opts *o, rb_rows *rows, int fast,
                            rb_err *e);

typedef struct {
    const char *name;    /* check name: CLI argument and CSV dataset */
    rb_theory_fn run;
    const char *doc;     /* one line: claim and reference */
    const char *options; /* comma list of the option keys it reads */
} rb_theory_check;

/* The table of checks (theory/checks.c). */
const rb_theory_check *rb_theory_checks(size_t *n);
const rb_theory_check *rb_theory_find(const char *name);

/* Typed claims.  Every claim states what it accepts, and its pass flag is
 * computed from that and nothing else:
 *   RB_CLAIM_APPROX    |simulated - predicted| <= tol   (a = predicted, b = tol)
 *   RB_CLAIM_AT_MOST   simulated <= bound               (a = bound)
 *   RB_CLAIM_AT_LEAST  simulated >= bound               (a = bound)
 *   RB_CLAIM_WITHIN    lo <= simulated <= hi            (a = lo, b = hi)
 * A NaN simulated value fails.  Rows (method = claim, params as given):
 *   claim_type  1..4 as above;
 *   predicted   APPROX: the prediction; AT_MOST/AT_LEAST: the bound; WITHIN:
 *               the midpoint; ci_low/ci_high = the accepted interval (NaN on
 *               an open side);
 *   simulated;
 *   tolerance   APPROX: tol; WITHIN: half the width (omitted for bounds);
 *   pass        1 or 0. */
typedef enum {
    RB_CLAIM_APPROX = 1,
    RB_CLAIM_AT_MOST = 2,
    RB_CLAIM_AT_LEAST = 3,
    RB_CLAIM_WITHIN = 4
} rb_claim_type;

int rb_theory_claim(rb_rows *rows, const char *claim, const char *params,
                    rb_claim_type type, double a, double b, double simulated,
                    rb_err *e);

/* A claim read back from rows (the pass row at index i and the rows of the
 * same method and params before it).  Returns 0 when row i is not a pass
 * row of a claim. */
typedef struct {
    rb_claim_type type;
    double predicted, simulated, tol, lo, hi;
    int pass;
} rb_claim;

int rb_theory_claim_read(const rb_row *rows, size_t i, rb_claim *c);

/* One line describing what the claim accepts ("<= 0.5", "in [1, 2]",
 * "= 3 +- 0.1") into buf. */
void rb_theory_claim_accepts(const rb_claim *c, char *buf, size_t cap);

/* Append one informational row (method = claim). */
int rb_theory_row(rb_rows *rows, const char *claim, const char *params,
                  const char *metric, double value, double lo, double hi,
                  long n, rb_err *e);

/* ----------------------------------------------------------- the checks */

int rb_theory_icl(const rb_opts *o, rb_rows *rows, int fast, rb_err *e);
int rb_theory_pretrain_gmm(const rb_opts *o, rb_rows *rows, int fast,
                           rb_err *e);
int rb_theory_fit(const rb_opts *o, rb_rows *rows, int fast, rb_err *e);
int rb_theory_nc_ufm(const rb_opts *o, rb_rows *rows, int fast, rb_err *e);
int rb_theory_nb_vs_lr(const rb_opts *o, rb_rows *rows, int fast, rb_err *e);
int rb_theory_id_manifolds(const rb_opts *o, rb_rows *rows, int fast,
                           rb_err *e);

/* The `fit` analysis of a user table (CSV bytes buf[0..len), read by the
 * caller): power law of column --ycol (default metric) on --xcol (default
 * size) with --boot bootstrap resamples and a held-out extrapolation of the
 * --hold largest sizes, verdict pass when the relative error <= --tol. */
int rb_theory_fit_table(const char *buf, size_t len, const rb_opts *o,
                        rb_rows *rows, rb_err *e);

/* Effective robustness of the models of a user table (CSV bytes): columns
 * --model_col (model), --id_col (id_acc), --ood_col (ood_acc), accuracies in
 * (0,1) or in percent; every model is a baseline; rows slope, intercept,
 * residual_sd and residual_logit per model (claim effective_robustness). */
int rb_theory_er_table(const char *buf, size_t len, const rb_opts *o,
                       rb_rows *rows, rb_err *e);

/* --------------------------------------------------- reusable pieces */

/* Read a CSV table with libcsv: a header row naming columns, then rows.
 * Columns xcol and ycol (by header name) are parsed as numbers into
 * *x and *y (owned by the caller after return, free()), *n rows.
 * When lab is not NULL and labcol names a column, its strings are copied
 * into *lab (n strings, each owned; free with rb_table_free_labels).
 * buf/len: the file's bytes.  Returns RB_OK or RB_EINVAL naming the
 * problem (missing column, non-number at row r). */
int rb_table_parse(const char *buf, size_t len, const char *xcol,
                   const char *ycol, const char *labcol, double **x,
                   double **y, char ***lab, size_t *n, rb_err *e);
void rb_table_free_labels(char **lab, size_t n);

/* Neural collapse statistics (README "collapse"; reference test in docs/reference_values.md a) of features h (n x d,
 * row-major, labels y in [0,k)), classifier w (k x d) and bias b (k, may
 * be NULL): nc1 = Tr(Sw Sb^+)/k (rank min(k-1,d) inverse via the SVD of
 * the centred means), etf = ETF deviation of the centred class means,
 * nc3 = Zhu/Tirer self-duality, nc4 = NCC mismatch with bias; global mean
 * = unweighted mean of the class means.  trace_sw = Tr(Sw). */
typedef struct {
    double nc1, nc1_quot, trace_sw, etf, nc3, nc4;
} rb_nc_stats;

int rb_theory_nc_stats(const double *h, const int32_t *y, size_t n, size_t d,
                       int k, const double *w, const double *b,
                       rb_nc_stats *res, rb_err *e);

#endif /* RB_THEORY_H */
