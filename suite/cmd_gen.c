/*
 * cmd_gen.c -- `repbench gen KIND [opts] -o FILE`: write a synthetic dump.
 *
 *   repbench gen gmm [--seed S] [--classes K] [--dim D] [--layers L]
 *                    [--n-train N] [--n-test N] [--n-ood N] [--sep0 x]
 *                    [--sep1 x] [--sd0 x] [--sd1 x] [--model NAME] -o FILE
 *
 * Numbers are parsed with strtol/strtoull/strtod and checked (never atoi);
 * bad usage prints one line and exits 2.  Defaults: rb_gen_gmm_defaults.
 */
#include "datasets/dump.h"
#include "datasets/weights.h"
#include "suite/suite.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char gen_usage[] =
    "usage: repbench gen gmm [--seed S] [--classes K] [--dim D] [--layers L]\n"
    "         [--n-train N] [--n-test N] [--n-ood N] [--sep0 x] [--sep1 x]\n"
    "         [--sd0 x] [--sd1 x] [--logit-scale s] [--n-shift N] [--tokens T]\n"
    "         [--text] [--groups] [--offset A] [--decay p] [--relu]\n"
    "         [--model NAME] -o FILE\n"
    "  --logit-scale s: write /logits/<split> of the last layer's Bayes head times s\n"
    "                   (default 2, an over-confident head; 0: no logits)\n"
    "  --n-shift N: a labeled shift_noise split (1.5x noise, offset); --tokens T:\n"
    "  /tokens of the last two layers; --text: /text and /text_pairs/test;\n"
    "  --groups: /groups of the labeled splits (see datasets/dump.h)\n"
    "  real-shaped features: --offset A adds A to every coordinate; --decay p\n"
    "  makes the within-class covariance sd^2 Q diag(j^-p) Q^T in a seeded random\n"
    "  orthonormal basis Q; --relu applies max(0, x) last (see datasets/gen.c)\n";

/* Parse a whole-string integer in [lo, hi]. */
static int parse_ull(const char *opt, const char *s, unsigned long long lo,
                     unsigned long long hi, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-') goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi) goto bad;
    *out = v;
    return 0;
bad:
    fprintf(stderr, "repbench: gen: --%s '%s': expected an integer in [%llu, %llu]\n",
            opt, s ? s : "", lo, hi);
    return -1;
}

static int parse_dbl(const char *opt, const char *s, double lo, double *out)
{
    char *end;
    errno = 0;
    double v = s && *s ? strtod(s, &end) : NAN;
    if (!s || !*s || errno || *end || !isfinite(v) || v < lo) {
        fprintf(stderr, "repbench: gen: --%s '%s': expected a finite number >= %g\n",
                opt, s ? s : "", lo);
        return -1;
    }
    *out = v;
    return 0;
}

static int gen_gmm(int argc, char **argv);

/* The kinds of synthetic data, one row each. */
static const struct {
    const char *kind;
    int (*run)(int argc, char **argv);
    const char *doc;
} kinds[] = {
    {"gmm", gen_gmm, "Gaussian-mixture feature dump, separation growing with depth"},
    {"weights", rb_gen_weights_cli, "sample checkpoints: pre-trained, random init, fine-tuned (issue 4)"},
};

int rb_cmd_gen(int argc, char **argv)
{
    /* The KIND is the first argument that is not an option or its value;
     * it is enough to look for a known kind word anywhere. */
    for (int i = 1; i < argc; i++)
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
            if (strcmp(argv[i], kinds[k].kind) == 0 && (i == 1 || argv[i - 1][0] != '-' ||
                                                        strchr(argv[i - 1], '=')))
                return kinds[k].run(argc, argv);
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        printf("usage: repbench gen KIND [opts] -o FILE\n");
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
            printf("  %-8s %s\n", kinds[k].kind, kinds[k].doc);
        return 0;
    }
    fprintf(stderr, "repbench: gen: no known KIND given (known: gmm, weights; try repbench gen --help)\n");
    return 2;
}

static int gen_gmm(int argc, char **argv)
{
    enum { O_SEED = 256, O_CLASSES, O_DIM, O_LAYERS, O_NTRAIN, O_NTEST, O_NOOD,
           O_SEP0, O_SEP1, O_SD0, O_SD1, O_MODEL, O_LOGITS, O_NSHIFT, O_TOKENS, O_TEXT,
           O_GROUPS, O_OFFSET, O_DECAY, O_RELU };
    static const struct option lopts[] = {
        {"seed", required_argument, NULL, O_SEED},
        {"classes", required_argument, NULL, O_CLASSES},
        {"dim", required_argument, NULL, O_DIM},
        {"layers", required_argument, NULL, O_LAYERS},
        {"n-train", required_argument, NULL, O_NTRAIN},
        {"n-test", required_argument, NULL, O_NTEST},
        {"n-ood", required_argument, NULL, O_NOOD},
        {"sep0", required_argument, NULL, O_SEP0},
        {"sep1", required_argument, NULL, O_SEP1},
        {"sd0", required_argument, NULL, O_SD0},
        {"sd1", required_argument, NULL, O_SD1},
        {"model", required_argument, NULL, O_MODEL},
        {"logit-scale", required_argument, NULL, O_LOGITS},
        {"n-shift", required_argument, NULL, O_NSHIFT},
        {"tokens", required_argument, NULL, O_TOKENS},
        {"text", no_argument, NULL, O_TEXT},
        {"groups", no_argument, NULL, O_GROUPS},
        {"offset", required_argument, NULL, O_OFFSET},
        {"decay", required_argument, NULL, O_DECAY},
        {"relu", no_argument, NULL, O_RELU},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    rb_gen_gmm g;
    rb_gen_gmm_defaults(&g);
    const char *out = NULL, *model = NULL;
    unsigned long long v;
    const unsigned long long NMAX = 1ull << 40;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", lopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_SEED: bad = parse_ull("seed", optarg, 0, UINT64_MAX, &v); g.seed = v; break;
        case O_CLASSES: bad = parse_ull("classes", optarg, 2, RB_DUMP_MAX_CLASSES, &v); g.k = (int)v; break;
        case O_DIM: bad = parse_ull("dim", optarg, 1, NMAX, &v); g.d = (size_t)v; break;
        case O_LAYERS: bad = parse_ull("layers", optarg, 1, 10000, &v); g.layers = (int)v; break;
        case O_NTRAIN: bad = parse_ull("n-train", optarg, 1, NMAX, &v); g.n_train = (size_t)v; break;
        case O_NTEST: bad = parse_ull("n-test", optarg, 1, NMAX, &v); g.n_test = (size_t)v; break;
        case O_NOOD: bad = parse_ull("n-ood", optarg, 0, NMAX, &v); g.n_ood = (size_t)v; break;
        case O_SEP0: bad = parse_dbl("sep0", optarg, 0, &g.sep0); break;
        case O_SEP1: bad = parse_dbl("sep1", optarg, 0, &g.sep1); break;
        case O_SD0: bad = parse_dbl("sd0", optarg, 0, &g.sd0); break;
        case O_SD1: bad = parse_dbl("sd1", optarg, 0, &g.sd1); break;
        case O_LOGITS: bad = parse_dbl("logit-scale", optarg, 0, &g.logit_scale); break;
        case O_NSHIFT: bad = parse_ull("n-shift", optarg, 0, NMAX, &v); g.n_shift = (size_t)v; break;
        case O_TOKENS: bad = parse_ull("tokens", optarg, 0, 4096, &v); g.tokens = (int)v; break;
        case O_TEXT: g.text = 1; break;
        case O_GROUPS: g.groups = 1; break;
        case O_OFFSET: bad = parse_dbl("offset", optarg, -1e30, &g.offset); break;
        case O_DECAY: bad = parse_dbl("decay", optarg, 0, &g.decay); break;
        case O_RELU: g.relu = 1; break;
        case O_MODEL: model = optarg; break;
        case 'o': out = optarg; break;
        case 'h': fputs(gen_usage, stdout); return 0;
        case ':':
            fprintf(stderr, "repbench: gen: option %s needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "repbench: gen: unknown option '%s' (try repbench gen --help)\n",
                    argv[optind - 1]);
            return 2;
        }
        if (bad) return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "repbench: gen: no KIND given (usage: repbench gen gmm [opts] -o FILE)\n");
        return 2;
    }
    if (strcmp(argv[optind], "gmm") != 0) {
        fprintf(stderr, "repbench: gen: unknown kind '%s' (known: gmm)\n", argv[optind]);
        return 2;
    }
    if (optind + 1 < argc) {
        fprintf(stderr, "repbench: gen: unexpected argument '%s'\n", argv[optind + 1]);
        return 2;
    }
    if (!out || !*out) {
        fprintf(stderr, "repbench: gen: no output file (-o FILE)\n");
        return 2;
    }
    if (model && !*model) {
        fprintf(stderr, "repbench: gen: --model must not be empty\n");
        return 2;
    }
    rb_err e = {0};
    int rc = rb_gen_gmm_write(out, &g, model, &e);
    if (rc) {
        fprintf(stderr, "repbench: %s\n", e.msg);
        return rb_exit_status(rc);
    }
    return 0;
}
