/*
 * checks.c -- the table of theory checks and the typed claims they share.
 */
#include "theory/theory.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const rb_theory_check checks[] = {
    {"icl", rb_theory_icl,
     "one-step preconditioned GD risk (closed form) vs Monte Carlo, Bayes <= GD; dMMSE vs ridge as tasks grow",
     "d,n_ctx,noise,tasks,covariates,M_max,cond,ridge_lambda,task_sd,task_rank,task_jitter"},
    {"pretrain_gmm", rb_theory_pretrain_gmm,
     "EM on m unlabeled + n labels vs n labels alone: excess risk C_phi/m + C_psi/n",
     "d,sep,reps,unlabeled_shift,label_noise"},
    {"fit", rb_theory_fit,
     "power law with asymptote (GSL nlinear, bootstrap, held-out extrapolation); effective robustness",
     "law,noise,boot,points,table,xcol,ycol,hold,tol,er_table,id_col,ood_col,model_col"},
    {"nc_ufm", rb_theory_nc_ufm,
     "neural collapse in the unconstrained-features model (GD, weight decay) and the perturbation model",
     "k,d,n_per_class,iters,imbalance,lambda,lr,h0_aniso"},
    {"nb_vs_lr", rb_theory_nb_vs_lr,
     "at a fixed Bayes error naive Bayes needs O(log n) samples, logistic regression O(n) (Ng & Jordan; Zheng et al. 2023)",
     "dims,classes,eps,reps,n_test,m_cap,features,lr_C,nuisance"},
    {"id_manifolds", rb_theory_id_manifolds,
     "bias and spread of the kNN intrinsic-dimension estimators on manifolds of known dimension",
     "sizes,reps,tol,noise"},
};

const rb_theory_check *rb_theory_checks(size_t *n)
{
    *n = sizeof checks / sizeof checks[0];
    return checks;
}

const rb_theory_check *rb_theory_find(const char *name)
{
    size_t n;
    const rb_theory_check *c = rb_theory_checks(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(c[i].name, name) == 0) return &c[i];
    return NULL;
}

int rb_theory_row(rb_rows *rows, const char *claim, const char *params,
                  const char *metric, double value, double lo, double hi,
                  long n, rb_err *e)
{
    return rb_rows_add(rows, claim, params, "", metric, value, lo, hi, n, e);
}

int rb_theory_claim(rb_rows *rows, const char *claim, const char *params,
                    rb_claim_type type, double a, double b, double simulated,
                    rb_err *e)
{
    double pred = a, lo = NAN, hi = NAN, tol = NAN;
    int pass = 0;
    switch (type) {
    case RB_CLAIM_APPROX:
        tol = b;
        lo = a - b;
        hi = a + b;
        pass = fabs(simulated - a) <= b;
        break;
    case RB_CLAIM_AT_MOST:
        hi = a;
        pass = simulated <= a;
        break;
    case RB_CLAIM_AT_LEAST:
        lo = a;
        pass = simulated >= a;
        break;
    case RB_CLAIM_WITHIN:
        lo = a;
        hi = b;
        pred = 0.5 * (a + b);
        tol = 0.5 * (b - a);
        pass = simulated >= a && simulated <= b;
        break;
    default:
        RB_FAIL(e, RB_EINVAL, "theory: claim %s has no type", claim);
    }
    if (isnan(simulated)) pass = 0;
    int rc;
    if ((rc = rb_theory_row(rows, claim, params, "claim_type", (double)type, NAN, NAN, 0, e)) ||
        (rc = rb_theory_row(rows, claim, params, "predicted", pred, lo, hi, 0, e)) ||
        (rc = rb_theory_row(rows, claim, params, "simulated", simulated, NAN, NAN, 0, e)) ||
        (!isnan(tol) && (rc = rb_theory_row(rows, claim, params, "tolerance", tol, NAN, NAN, 0, e))) ||
        (rc = rb_theory_row(rows, claim, params, "pass", pass ? 1.0 : 0.0, NAN, NAN, 0, e)))
        return rc;
    return RB_OK;
}

int rb_theory_claim_read(const rb_row *rows, size_t i, rb_claim *c)
{
    const rb_row *p = &rows[i];
    if (strcmp(p->metric, "pass") != 0) return 0;
    memset(c, 0, sizeof *c);
    c->type = RB_CLAIM_APPROX; /* rows written before claims had types */
    c->predicted = c->simulated = c->tol = c->lo = c->hi = NAN;
    c->pass = p->value == 1.0;
    int have_pred = 0;
    for (size_t k = i; k-- > 0 && i - k <= 4;) {
        const rb_row *r = &rows[k];
        if (strcmp(r->method, p->method) || strcmp(r->params, p->params)) break;
        if (!strcmp(r->metric, "claim_type")) c->type = (rb_claim_type)(int)r->value;
        else if (!strcmp(r->metric, "predicted")) {
            c->predicted = r->value;
            c->lo = r->ci_low;
            c->hi = r->ci_high;
            have_pred = 1;
        } else if (!strcmp(r->metric, "simulated")) c->simulated = r->value;
        else if (!strcmp(r->metric, "tolerance")) c->tol = r->value;
    }
    if (have_pred && c->type == RB_CLAIM_APPROX && isnan(c->lo) && !isnan(c->tol)) {
        c->lo = c->predicted - c->tol;
        c->hi = c->predicted + c->tol;
    }
    return have_pred;
}

void rb_theory_claim_accepts(const rb_claim *c, char *buf, size_t cap)
{
    switch (c->type) {
    case RB_CLAIM_AT_MOST: snprintf(buf, cap, "<= %.6g", c->predicted); break;
    case RB_CLAIM_AT_LEAST: snprintf(buf, cap, ">= %.6g", c->predicted); break;
    case RB_CLAIM_WITHIN: snprintf(buf, cap, "in [%.6g, %.6g]", c->lo, c->hi); break;
    default: snprintf(buf, cap, "= %.6g +- %.3g", c->predicted, c->tol); break;
    }
}
