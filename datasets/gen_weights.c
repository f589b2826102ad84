/*
 * gen_weights.c -- `repbench gen weights`: synthetic checkpoints with known
 * answers (issue 4, item 6).
 *
 * Architecture (a small CNN; conv kernels [out, in, 3, 3]):
 *   conv1.weight [16,3,3,3]   conv1.bias [16]
 *   layer1.0.conv1.weight [16,16,3,3]   layer1.0.conv2.weight [16,16,3,3]
 *   layer2.0.conv1.weight [32,16,3,3]   layer2.0.conv2.weight [32,32,3,3]
 *   layer3.0.conv1.weight [64,32,3,3]   layer3.0.conv2.weight [64,64,3,3]
 *   proj.weight [256,128]     fc.weight [C,D]   fc.bias [C]
 *
 * Kinds and their known answers:
 *   pre   "pre-trained": every 3x3 filter is drawn in the 2-D DCT-II basis
 *         of 3x3 with coefficient sd rho^(u+v) (rho = 0.35, so filters are
 *         smooth), then rescaled to max|w| = U(0.3, 1) * s_layer; exactly
 *         round(share * O*I) filters per conv layer (chosen at random) are
 *         scaled to max|w| = 1e-3 * s_layer instead, so the sparsity of
 *         every conv layer is round(share*O*I)/(O*I) for any eps in
 *         (0.0034, 0.3).  proj.weight = U diag(sigma) V^T with random
 *         orthonormal U, V and sigma_i^2 the Pareto quantiles
 *         (1 - (i-0.5)/128)^(-1/(alpha-1)), alpha = 3: its power-law fit
 *         gives alpha = 3 within one standard error (0.18).
 *   init  PyTorch's default init: kaiming_uniform(a = sqrt 5), i.e.
 *         U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases; filter
 *         sparsity ~ 0 and normalised variance entropy near 1.
 *   ft    "fine-tuned": pre (same --seed) plus, for every weight reshaped to
 *         [out, in*kh*kw], a rank-r delta (r = --rank, default 2) of
 *         Frobenius norm delta * ||W||_F (default 0.1), seeded by --task;
 *         biases are unchanged.  Task vectors of every weight block
 *         therefore have rank exactly r, and different tasks have nearly
 *         orthogonal task vectors.
 * The head fc: with --features DUMP, the nearest-class-mean head of the
 * dump's deepest layer on its train split (W_c = mu_c, b_c = -|mu_c|^2/2),
 * so C and D follow the dump; pre holds that head; ft adds its rank-r delta
 * scaled by --head-delta (default 0.5 * task) so that heads of different
 * tasks have different accuracies.  Without --features, C = --classes
 * (10) and D = --dim (64) and the head is random.
 */
#include "datasets/dump.h"
#include "datasets/weights.h"

#include <errno.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    size_t o, i, k; /* k = kernel side (3) or 0 for a matrix [o, i] */
} arch_row;

static const arch_row arch[] = {
    {"conv1.weight", 16, 3, 3},          {"layer1.0.conv1.weight", 16, 16, 3},
    {"layer1.0.conv2.weight", 16, 16, 3}, {"layer2.0.conv1.weight", 32, 16, 3},
    {"layer2.0.conv2.weight", 32, 32, 3}, {"layer3.0.conv1.weight", 64, 32, 3},
    {"layer3.0.conv2.weight", 64, 64, 3}, {"proj.weight", 256, 128, 0},
};
#define NARCH (sizeof arch / sizeof arch[0])

typedef struct {
    const char *kind, *out, *features, *model;
    uint64_t seed, task;
    double share, delta, head_delta, alpha;
    long rank, classes, dim;
    int dtype;
} gen_opts;

/* Random m x r matrix with orthonormal columns (Householder QR). */
static int orthonormal(gsl_rng *rng, size_t m, size_t r, double *q, rb_err *e)
{
    double *tau = malloc(r * sizeof *tau);
    if (!tau) RB_FAIL(e, RB_ENOMEM, "gen weights: out of memory");
    for (size_t i = 0; i < m * r; i++) q[i] = gsl_ran_gaussian(rng, 1.0);
    lapack_int info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, (lapack_int)m, (lapack_int)r, q,
                                     (lapack_int)r, tau);
    if (!info)
        info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, (lapack_int)m, (lapack_int)r, (lapack_int)r, q,
                              (lapack_int)r, tau);
    free(tau);
    if (info) RB_FAIL(e, RB_EINTERNAL, "gen weights: QR failed (info %d)", (int)info);
    return RB_OK;
}

/* Smooth filters with an exact share of degenerate ones. */
static int smooth_conv(gsl_rng *rng, const arch_row *a, double share, double *w, rb_err *e)
{
    size_t n = a->o * a->i;
    double basis[9][9], sd[9];
    for (int u = 0; u < 3; u++)
        for (int v = 0; v < 3; v++) {
            double cu = u ? sqrt(2.0 / 3.0) : sqrt(1.0 / 3.0), cv = v ? sqrt(2.0 / 3.0) : sqrt(1.0 / 3.0);
            for (int p = 0; p < 3; p++)
                for (int q = 0; q < 3; q++)
                    basis[u * 3 + v][p * 3 + q] =
                        cu * cv * cos(M_PI * (2 * p + 1) * u / 6.0) * cos(M_PI * (2 * q + 1) * v / 6.0);
            sd[u * 3 + v] = pow(0.35, u + v);
        }
    double s_layer = 1.0 / sqrt((double)(a->i * 9)); /* Kaiming-like scale */
    unsigned char *deg = calloc(n, 1);
    size_t *idx = malloc(n * sizeof *idx), *pick = malloc((n + 1) * sizeof *pick);
    if (!deg || !idx || !pick) {
        free(deg);
        free(idx);
        free(pick);
        RB_FAIL(e, RB_ENOMEM, "gen weights: out of memory");
    }
    size_t nd = (size_t)floor(share * (double)n + 0.5);
    for (size_t j = 0; j < n; j++) idx[j] = j;
    if (nd) gsl_ran_choose(rng, pick, nd, idx, n, sizeof *idx);
    for (size_t j = 0; j < nd; j++) deg[pick[j]] = 1;
    for (size_t j = 0; j < n; j++) {
        double *f = w + 9 * j, mx = 0;
        for (int b = 0; b < 9; b++) {
            double z = gsl_ran_gaussian(rng, sd[b]);
            for (int p = 0; p < 9; p++) f[p] = (b ? f[p] : 0) + z * basis[b][p];
        }
        for (int p = 0; p < 9; p++) mx = fmax(mx, fabs(f[p]));
        double target = deg[j] ? 1e-3 * s_layer : gsl_ran_flat(rng, 0.3, 1.0) * s_layer;
        double scale = mx > 0 ? target / mx : 0;
        for (int p = 0; p < 9; p++) f[p] *= scale;
    }
    free(deg);
    free(idx);
    free(pick);
    return RB_OK;
}

/* Matrix with a power-law ESD: U diag(sigma) V^T. */
static int powerlaw_matrix(gsl_rng *rng, size_t m, size_t n, double alpha, double *w, rb_err *e)
{
    size_t r = m < n ? m : n;
    double *u = malloc(m * r * sizeof *u), *v = malloc(n * r * sizeof *v);
    int rc = RB_OK;
    if (!u || !v) {
        rc = rb_fail(e, RB_ENOMEM, "gen weights: out of memory");
        goto out;
    }
    if ((rc = orthonormal(rng, m, r, u, e)) || (rc = orthonormal(rng, n, r, v, e))) goto out;
    for (size_t i = 0; i < m * n; i++) w[i] = 0;
    for (size_t k = 0; k < r; k++) {
        double lam = pow(1.0 - ((double)k + 0.5) / (double)r, -1.0 / (alpha - 1.0));
        double s = sqrt(lam) * 0.05;
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++) w[i * n + j] += s * u[i * r + k] * v[j * r + k];
    }
out:
    free(u);
    free(v);
    return rc;
}

static void kaiming_uniform(gsl_rng *rng, double *w, size_t n, size_t fan_in)
{
    double b = 1.0 / sqrt((double)fan_in);
    for (size_t i = 0; i < n; i++) w[i] = gsl_ran_flat(rng, -b, b);
}

/* w += rank-r delta with ||delta||_F = rel * ||w||_F (or = rel when w = 0). */
static int add_lowrank(gsl_rng *rng, double *w, size_t m, size_t n, long r, double rel, rb_err *e)
{
    double *a = malloc(m * (size_t)r * sizeof *a), *b = malloc(n * (size_t)r * sizeof *b);
    double *d = malloc(m * n * sizeof *d);
    if (!a || !b || !d) {
        free(a);
        free(b);
        free(d);
        RB_FAIL(e, RB_ENOMEM, "gen weights: out of memory");
    }
    for (size_t i = 0; i < m * (size_t)r; i++) a[i] = gsl_ran_gaussian(rng, 1.0);
    for (size_t i = 0; i < n * (size_t)r; i++) b[i] = gsl_ran_gaussian(rng, 1.0);
    double dn = 0, wn = 0;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0;
            for (long k = 0; k < r; k++) s += a[i * (size_t)r + (size_t)k] * b[j * (size_t)r + (size_t)k];
            d[i * n + j] = s;
            dn += s * s;
            wn += w[i * n + j] * w[i * n + j];
        }
    double scale = rel * (wn > 0 ? sqrt(wn) : 1.0) / sqrt(dn);
    for (size_t i = 0; i < m * n; i++) w[i] += scale * d[i];
    free(a);
    free(b);
    free(d);
    return RB_OK;
}

/* Nearest-class-mean head of the deepest layer of the dump's train split. */
static int ncm_head(const char *path, double **w, double **b, long *c, long *d, rb_err *e)
{
    rb_dump *dp = NULL;
    float *rows = NULL;
    int rc = rb_dump_open(path, 0, &dp, e);
    if (rc) return rc;
    const rb_source *s = rb_dump_source(dp);
    int tr = rb_source_split(s, "train");
    if (tr < 0 || !s->split_y[tr] || s->nlayers == 0) {
        rc = rb_fail(e, RB_EINVAL, "%s: gen weights --features needs a labeled train split", path);
        goto out;
    }
    size_t L = s->nlayers - 1, D = s->layer_d[L], N = s->split_n[tr], K = (size_t)s->k;
    *w = calloc(K * D, sizeof **w);
    *b = calloc(K, sizeof **b);
    size_t *cnt = calloc(K, sizeof *cnt);
    rows = malloc(1024 * D * sizeof *rows);
    if (!*w || !*b || !cnt || !rows) {
        free(cnt);
        rc = rb_fail(e, RB_ENOMEM, "gen weights: out of memory");
        goto out;
    }
    for (size_t r0 = 0; r0 < N && !rc; r0 += 1024) {
        size_t m = N - r0 < 1024 ? N - r0 : 1024;
        if ((rc = s->read(s->h, (size_t)tr, L, r0, m, rows, e))) break;
        for (size_t i = 0; i < m; i++) {
            int32_t y = s->split_y[tr][r0 + i];
            cnt[y]++;
            for (size_t j = 0; j < D; j++) (*w)[(size_t)y * D + j] += rows[i * D + j];
        }
    }
    for (size_t k = 0; k < K && !rc; k++) {
        double nn = 0;
        for (size_t j = 0; j < D; j++) {
            (*w)[k * D + j] /= (double)(cnt[k] ? cnt[k] : 1);
            nn += (*w)[k * D + j] * (*w)[k * D + j];
        }
        (*b)[k] = -0.5 * nn;
    }
    free(cnt);
    *c = (long)K;
    *d = (long)D;
out:
    free(rows);
    rb_dump_close(dp);
    return rc;
}

static int generate(const gen_opts *g, rb_err *e)
{
    int rc = RB_OK;
    int is_init = strcmp(g->kind, "init") == 0, is_ft = strcmp(g->kind, "ft") == 0;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937), *trng = gsl_rng_alloc(gsl_rng_mt19937);
    double *buf = NULL, *hw = NULL, *hb = NULL;
    rb_ckptw *w = NULL;
    long C = g->classes, D = g->dim;
    if (!rng || !trng) {
        rc = rb_fail(e, RB_ENOMEM, "gen weights: out of memory");
        goto out;
    }
    gsl_rng_set(rng, g->seed * 2 + (uint64_t)is_init);
    gsl_rng_set(trng, g->seed * 1000003u + g->task * 7919u + 17u);
    if (g->features && (rc = ncm_head(g->features, &hw, &hb, &C, &D, e))) goto out;
    size_t maxn = 0;
    for (size_t l = 0; l < NARCH; l++) {
        size_t n = arch[l].o * arch[l].i * (arch[l].k ? 9 : 1);
        if (n > maxn) maxn = n;
    }
    buf = malloc(maxn * sizeof *buf);
    if (!buf) {
        rc = rb_fail(e, RB_ENOMEM, "gen weights: out of memory");
        goto out;
    }
    if ((rc = rb_ckptw_create(g->out, g->model, &w, e))) goto out;
    for (size_t l = 0; l < NARCH; l++) {
        const arch_row *a = &arch[l];
        size_t cols = a->k ? a->i * 9 : a->i, n = a->o * cols;
        if (is_init) kaiming_uniform(rng, buf, n, cols);
        else if (a->k) rc = smooth_conv(rng, a, g->share, buf, e);
        else rc = powerlaw_matrix(rng, a->o, a->i, g->alpha, buf, e);
        if (!rc && is_ft) rc = add_lowrank(trng, buf, a->o, cols, g->rank, g->delta, e);
        size_t dims[4] = {a->o, a->i, 3, 3};
        if (!rc) rc = rb_ckptw_add(w, a->name, a->k ? 4 : 2, dims, buf, g->dtype, e);
        if (!rc && l == 0) { /* conv1.bias */
            double bias[16];
            kaiming_uniform(rng, bias, 16, 27);
            size_t bd[1] = {16};
            rc = rb_ckptw_add(w, "conv1.bias", 1, bd, bias, g->dtype, e);
        }
        if (rc) goto out;
    }
    /* Head. */
    size_t cd = (size_t)C * (size_t)D;
    double *fw = malloc(cd * sizeof *fw), *fb = malloc((size_t)C * sizeof *fb);
    if (!fw || !fb) {
        free(fw);
        free(fb);
        rc = rb_fail(e, RB_ENOMEM, "gen weights: out of memory");
        goto out;
    }
    if (hw && !is_init) {
        memcpy(fw, hw, cd * sizeof *fw);
        memcpy(fb, hb, (size_t)C * sizeof *fb);
    } else {
        kaiming_uniform(rng, fw, cd, (size_t)D);
        kaiming_uniform(rng, fb, (size_t)C, (size_t)D);
    }
    if (is_ft) {
        double hd = g->head_delta >= 0 ? g->head_delta : 0.5 * (double)g->task;
        rc = add_lowrank(trng, fw, (size_t)C, (size_t)D, g->rank, hd, e);
    }
    size_t fd[2] = {(size_t)C, (size_t)D}, bd[1] = {(size_t)C};
    if (!rc) rc = rb_ckptw_add(w, "fc.weight", 2, fd, fw, g->dtype, e);
    if (!rc) rc = rb_ckptw_add(w, "fc.bias", 1, bd, fb, g->dtype, e);
    free(fw);
    free(fb);
    if (rc) goto out;
    rc = rb_ckptw_close(w, e);
    w = NULL;
out:
    if (w) {
        rb_err ig = {0};
        rb_ckptw_close(w, &ig); /* frees; the earlier error stands */
        remove(g->out);
    }
    free(buf);
    free(hw);
    free(hb);
    gsl_rng_free(rng);
    gsl_rng_free(trng);
    return rc;
}

static const char gen_usage[] =
    "usage: repbench gen weights [--kind pre|init|ft] [--seed N] [--task K] [--degenerate SHARE]\n"
    "         [--rank R] [--delta REL] [--head-delta REL] [--alpha A] [--classes C] [--dim D]\n"
    "         [--features DUMP] [--dtype f32|f16|f64|bf16] [--model NAME] -o FILE\n"
    "  FILE ending in .safetensors is written as safetensors, any other as HDF5.\n";

static int num(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "repbench: gen weights: option %s: '%s' is not a number in [%g, %g]\n",
                opt, s, lo, hi);
        return 2;
    }
    *out = v;
    return 0;
}

int rb_gen_weights_cli(int argc, char **argv)
{
    gen_opts g = {"pre", NULL, NULL, NULL, 1, 1, 0.125, 0.1, -1, 3.0, 2, 10, 64, RB_WT_F32};
    int seen_kind_word = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "weights") == 0 && !seen_kind_word) {
            seen_kind_word = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(gen_usage, stdout);
            return 0;
        }
        if (a[0] != '-') {
            fprintf(stderr, "repbench: gen weights: unexpected argument '%s'\n", a);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "repbench: gen weights: option %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        double x;
        if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) g.out = v;
        else if (strcmp(a, "--kind") == 0) {
            if (strcmp(v, "pre") && strcmp(v, "init") && strcmp(v, "ft")) {
                fprintf(stderr, "repbench: gen weights: --kind '%s' (pre, init or ft)\n", v);
                return 2;
            }
            g.kind = v;
        } else if (strcmp(a, "--features") == 0) g.features = v;
        else if (strcmp(a, "--model") == 0) g.model = v;
        else if (strcmp(a, "--dtype") == 0) {
            if (!strcmp(v, "f32")) g.dtype = RB_WT_F32;
            else if (!strcmp(v, "f16")) g.dtype = RB_WT_F16;
            else if (!strcmp(v, "f64")) g.dtype = RB_WT_F64;
            else if (!strcmp(v, "bf16")) g.dtype = RB_WT_BF16;
            else {
                fprintf(stderr, "repbench: gen weights: --dtype '%s' (f32, f16, f64, bf16)\n", v);
                return 2;
            }
        } else if (strcmp(a, "--seed") == 0) {
            if (num(a, v, 0, 4294967295.0, &x) || x != floor(x)) return 2;
            g.seed = (uint64_t)x;
        } else if (strcmp(a, "--task") == 0) {
            if (num(a, v, 1, 1000, &x) || x != floor(x)) return 2;
            g.task = (uint64_t)x;
        } else if (strcmp(a, "--degenerate") == 0) {
            if (num(a, v, 0, 1, &g.share)) return 2;
        } else if (strcmp(a, "--rank") == 0) {
            if (num(a, v, 1, 16, &x) || x != floor(x)) return 2;
            g.rank = (long)x;
        } else if (strcmp(a, "--delta") == 0) {
            if (num(a, v, 0, 100, &g.delta)) return 2;
        } else if (strcmp(a, "--head-delta") == 0) {
            if (num(a, v, 0, 100, &g.head_delta)) return 2;
        } else if (strcmp(a, "--alpha") == 0) {
            if (num(a, v, 1.1, 20, &g.alpha)) return 2;
        } else if (strcmp(a, "--classes") == 0) {
            if (num(a, v, 2, 100000, &x) || x != floor(x)) return 2;
            g.classes = (long)x;
        } else if (strcmp(a, "--dim") == 0) {
            if (num(a, v, 1, 100000, &x) || x != floor(x)) return 2;
            g.dim = (long)x;
        } else {
            fprintf(stderr, "repbench: gen weights: unknown option '%s'\n%s", a, gen_usage);
            return 2;
        }
    }
    if (!g.out || !*g.out) {
        fprintf(stderr, "repbench: gen weights: no output file (-o FILE)\n");
        return 2;
    }
    if (g.dtype == RB_WT_BF16 && !strstr(g.out, ".safetensors")) {
        fprintf(stderr, "repbench: gen weights: bf16 is written to .safetensors only\n");
        return 2;
    }
    rb_err e = {0};
    int rc = generate(&g, &e);
    if (rc) {
        fprintf(stderr, "repbench: %s\n", e.msg);
        return rb_exit_status(rc);
    }
    return 0;
}
