/*
 * checks.c -- the table of theory checks and the verdict rows they share.
 */
#include "theory/theory.h"

#include <math.h>
#include <string.h>

static const rb_theory_check checks[] = {
    {"icl", rb_theory_icl,
     "one-step preconditioned GD risk (closed form) vs Monte Carlo, Bayes <= GD; dMMSE vs ridge as tasks grow",
     "d,n_ctx,noise,tasks,covariates,M_max"},
    {"pretrain_gmm", rb_theory_pretrain_gmm,
     "EM on m unlabeled + n labels vs n labels alone: excess risk C_phi/m + C_psi/n",
     "d,sep,reps,unlabeled_shift"},
    {"fit", rb_theory_fit,
     "power law with asymptote (GSL nlinear, bootstrap, held-out extrapolation); effective robustness",
     "law,noise,boot,points,table,xcol,ycol,hold,tol,er_table,id_col,ood_col,model_col"},
    {"nc_ufm", rb_theory_nc_ufm,
     "neural collapse in the unconstrained-features model (GD, weight decay) and the perturbation model",
     "k,d,n_per_class,iters,imbalance,lambda,lr"},
    {"nb_vs_lr", rb_theory_nb_vs_lr,
     "naive Bayes needs O(log n) samples, logistic regression O(n) (Ng & Jordan; Zheng et al. 2023)",
     "dims,classes,eps,reps,n_test,cov,m_cap"},
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

int rb_theory_verdict(rb_rows *rows, const char *claim, const char *params,
                      double predicted, double simulated, double tol,
                      int pass, rb_err *e)
{
    int rc;
    if ((rc = rb_theory_row(rows, claim, params, "predicted", predicted, NAN, NAN, 0, e)) ||
        (rc = rb_theory_row(rows, claim, params, "simulated", simulated, NAN, NAN, 0, e)) ||
        (rc = rb_theory_row(rows, claim, params, "tolerance", tol, NAN, NAN, 0, e)) ||
        (rc = rb_theory_row(rows, claim, params, "pass", pass ? 1.0 : 0.0, NAN, NAN, 0, e)))
        return rc;
    return RB_OK;
}
