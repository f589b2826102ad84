#!/bin/bash
# cli_report.sh -- `repbench report DIR` end to end (issue 6):
#   1. the fixture results dir (tests/fixtures/report: probe, geometry, ood,
#      weights, theory, run.json skip list) -> every expected figure exists
#      as .dat/.gp/valid PNG/valid SVG; summary.md's numbers equal the CSV's
#      (recomputed in Python); index.html is static and complete;
#   2. determinism: a second copy at another path and a re-run give
#      byte-identical .dat, .gp, index.html and summary.md;
#   3. malformed inputs: one clear line and exit 2 (exit 1 when gnuplot is
#      missing, naming apt-get install gnuplot-nox);
#   4. real `repbench run` output when the run/gen subcommands are built;
#   5. index.html rendered by headless Chromium without console messages
#      (installed with apt when missing; skipped only if that fails).
# Environment: RB_BIN (repbench binary), PYTHON (default /usr/bin/python3).
set -u
RB_BIN=${RB_BIN:-bin/repbench}
PYTHON=${PYTHON:-/usr/bin/python3}
HERE=$(cd "$(dirname "$0")" && pwd)
RB=$(cd "$(dirname "$RB_BIN")" && pwd)/$(basename "$RB_BIN")
PY="$PYTHON $HERE/cli_report.py"
T=$(mktemp -d /tmp/rb_cli_report.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0
failn=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; failn=$((failn + 1)); }
check() { # check NAME COMMAND...  (passes when the command succeeds)
    local name=$1; shift
    if "$@" >"$T/out.log" 2>&1; then ok "$name"; else bad "$name"; sed 's/^/     /' "$T/out.log" | head -20; fi
}

fixture() { # copy the fixture to $1
    mkdir -p "$1" && cp -r "$HERE/fixtures/report/." "$1/" && rm -f "$1/make_fixture.py"
}

# expect_exit NAME CODE PATTERN DIR [OPTIONS]: report DIR exits CODE and its
# last stderr line matches PATTERN.
expect_exit() {
    local name=$1 code=$2 pat=$3 dir=$4; shift 4
    "$RB" report "$@" "$dir" >"$T/stdout" 2>"$T/stderr"
    local rc=$?
    local last
    last=$(tail -n 1 "$T/stderr")
    if [ "$rc" = "$code" ] && grep -q -- "$pat" <<<"$last"; then ok "$name (exit $rc: $last)"
    else bad "$name: exit $rc (want $code), last line '$last' (want /$pat/)"; sed 's/^/     /' "$T/stderr" | head; fi
}

# ------------------------------------------------------------- 1. fixture
A=$T/a
fixture "$A"
check "report on the fixture exits 0" "$RB" report "$A"
FIGS="gmm_small_probe_top1 gmm_small_probe_balanced_acc gmm_small_probe_top5 gmm_small_learning_top1_fc
      gmm_small_ood_auroc gmm_small_ood_fpr95 gmm_small_collapse_nc gmm_small_idim gmm_small_cka_linear gmm_small_spectrum_eigenvalue
      gmm_small_metric_foo_ratio theory_theory_hoeffding_mean theory_checks weights_metric_sparsity
      weights_metric_variance_entropy weights_metric_alpha weights_eigenfilters weights_esd_resnet_pre
      weights_esd_resnet_ft gmm_small_roc_ood_svhn gmm_small_roc_ood_noise gmm_small_reliability_calib_logits
      gmm_small_fewshot_top1 gmm_small_fewshot_top1_k1 gmm_small_fewshot_top1_k5 gmm_small_fewshot_top1_k20
      gmm_small_learning_curve_error"
NFIG=27
# shellcheck disable=SC2086
check "$NFIG figures: .dat, .gp, valid PNG and SVG each" $PY files "$A" $FIGS
nfig=$(ls "$A"/figures/*.gp | wc -l)
check "no figure beyond the expected $NFIG (got $nfig)" test "$nfig" = $NFIG
check "ROC .dat = the deepest layer's roc_tpr rows, legend = auroc row (ood_svhn)" \
    $PY roc "$A" gmm_small_roc_ood_svhn ood_svhn
check "ROC (ood_noise)" $PY roc "$A" gmm_small_roc_ood_noise ood_noise
check "ROC: same colour for knn as in the probe figure" \
    grep -q "lc rgb '#ff7f0e' title 'knn fc: AUROC 0.8500'" "$A/figures/gmm_small_roc_ood_svhn.gp"
check "reliability .dat = the CSV's bins, ECE and T in the key, ECE = bins' weighted gap" \
    $PY reliability "$A" gmm_small_reliability_calib_logits
check "few-shot bars .dat = the deepest layer's rows with intervals" $PY fewshot "$A" gmm_small_fewshot_top1
check "curve learning curves: .dat = the deepest layer's error rows, law = e_inf + a m^-b of the fit rows" \
    $PY lcurve "$A" gmm_small_learning_curve_error
check "roc_tpr / reliability rows not drawn as sweeps" bash -c "! ls '$A/figures/'*sweep* 2>/dev/null"
check "few-shot rows not in the probe figure" bash -c "! grep -q fewshot '$A/figures/gmm_small_probe_top1.gp'"
check "index.html static, complete, every link resolves" $PY index "$A"
check "summary.md numbers equal the CSV's" $PY summary "$A"
check "theory checks: the failing one is marked" grep -q "| rate_bound | k=4;seed=2 | approx | 0.5 | 0.71 | \[0.4, 0.6\] | NO |" "$A/summary.md"
check "summary names the undrawn metric" grep -q 'metric `mystery_score` of method `shape` (1 rows) not drawn' "$A/summary.md"
check "probe legend has every probe" grep -q "title 'ncm'" "$A/figures/gmm_small_probe_top1.gp"
check "one line per checkpoint in the weights figure" \
    bash -c "grep -q \"title 'resnet_pre'\" '$A/figures/weights_metric_sparsity.gp' &&
             grep -q \"title 'resnet_ft'\" '$A/figures/weights_metric_sparsity.gp'"
check "same colour for knn in probe and OOD figures" \
    bash -c "grep -q \"lc rgb '#ff7f0e' title 'knn'\" '$A/figures/gmm_small_probe_top1.gp' &&
             grep -q \"lc rgb '#ff7f0e' title 'knn\" '$A/figures/gmm_small_ood_auroc.gp'"
check "ESD: histograms integrate to 1, fitted tail as the CSV's alpha/x_min/n_tail" $PY esd "$A" resnet_pre
check "learning-curve law equals numpy.polyfit" $PY learnfit "$A" gmm_small_learning_top1_fc
check "layer order from the CSV, not natural sort" grep -q "set xtics ('conv1' 0, 'layer1' 1, 'layer2' 2, 'layer3' 3, 'layer4' 4, 'fc' 5)" "$A/figures/gmm_small_probe_top1.gp"
check ".gp re-draws by hand" bash -c "cd '$A/figures' && gnuplot -e \"out='byhand'\" gmm_small_cka_linear.gp && test -s byhand.png && rm byhand.png byhand.svg"

# ------------------------------------------- 1b. readable figures (issue 11)
check "series sharing a colour differ in dash or point (every fixture figure)" $PY colours "$A"
check "learning curves: log y with 4+ labelled tics" $PY logtics "$A" gmm_small_learning_curve_error y 4
check "long legends below the plot, in columns, with room" \
    bash -c "grep -q '^set key outside below center horizontal maxcols' '$A/figures/gmm_small_ood_auroc.gp' &&
             grep -q '^set bmargin' '$A/figures/gmm_small_ood_auroc.gp'"
F11=$T/f11
$PY make11 "$F11"
check "report on the issue-11 cases" "$RB" report "$F11"
check "  ... colours distinct within each figure (nc1_trace / nc1_quot, idim estimators)" $PY colours "$F11"
check "  ... C from a log grid on a log axis with 4+ labelled tics" $PY logtics "$F11" m_d_metric_C y 4
check "  ... PCA counts apart from the local estimators" \
    bash -c "grep -q id_pca90 '$F11/figures/m_d_idim_pca.dat' && ! grep -q id_pca90 '$F11/figures/m_d_idim.dat' &&
             grep -q id_twonn '$F11/figures/m_d_idim.dat'"
check "  ... CKA heat map: 1 on the diagonal" $PY diag "$F11" m_d_cka_linear
check "  ... 10 eigenvalues: y range within a factor 2 of the data, labelled log tics" \
    bash -c "$PY tight '$F11' m_d_spectrum_eig && $PY logtics '$F11' m_d_spectrum_eig y 4"
check "  ... WiSE-FT: x in [0:1], one colour per checkpoint, soup points in the key" $PY wiseft "$F11" weights_sweep_wiseft_acc
check "  ... tv_cosine: points, 'all' last, the random init a grey reference" $PY taskvec "$F11" weights_metric_tv_cosine
check "  ... PNGs valid" $PY files "$F11" m_d_metric_C m_d_idim m_d_idim_pca m_d_cka_linear m_d_spectrum_eig \
    m_d_collapse_nc1 weights_sweep_wiseft_acc weights_metric_tv_cosine

# ------------------------------------------------------- 2. determinism
B=$T/elsewhere/b
fixture "$B"
check "report on a second copy" "$RB" report "$B"
check "same CSV -> same .dat/.gp/pages at another path" $PY same "$A" "$B"
cp -r "$A" "$T/a0"
check "re-run in place" "$RB" report "$A"
check "re-run gives the same bytes" $PY same "$A" "$T/a0"

rm -rf "$A/gmm_small/ood"
check "re-run after removing a family" "$RB" report "$A"
check "  ... its figures are gone, the rest intact" bash -c "! ls '$A/figures/'*ood* 2>/dev/null && test -s '$A/figures/gmm_small_probe_top1.png'"
check "  ... and the page is consistent" $PY index "$A"

# ------------------------------------------------- 3. malformed inputs
H="model,dataset,layer,split,method,params,metric,value,ci_low,ci_high,n,seed,seconds"
mkdir -p "$T/m/empty_dir" "$T/m/empty/p" "$T/m/nocol/p" "$T/m/fields/p" "$T/m/hdr/p" "$T/m/extra/p" \
         "$T/m/mixed/good" "$T/m/mixed/bad" "$T/m/unknown/p" "$T/m/num/p"
: >"$T/m/empty/p/results.csv"
printf 'model,dataset,layer,split,method,params,metric\nm,d,l1,test,knn,,top1\n' >"$T/m/nocol/p/results.csv"
printf '%s\nm,d,l1,test,knn,,top1,0.5,,,10,0\n' "$H" >"$T/m/fields/p/results.csv"
printf '%s\n' "$H" >"$T/m/hdr/p/results.csv"
printf '%s,host\nm,d,l1,test,knn,,top1,0.5,0.4,0.6,10,0,0,h\nm,d,l2,test,knn,,top1,0.7,0.6,0.8,10,0,0,h\n' "$H" \
    >"$T/m/extra/p/results.csv"
cp "$T/m/extra/p/results.csv" "$T/m/mixed/good/results.csv"
printf '%s\nm,d,l1,test,knn,,top1,0.5\n' "$H" >"$T/m/mixed/bad/results.csv"
printf '%s\nm,d,l1,test,brand_new,,weird_metric,3.5,,,10,0,0\n' "$H" >"$T/m/unknown/p/results.csv"
printf '%s\nm,d,l1,test,knn,,top1,0,5,,,10,0,0\n' "$H" >"$T/m/num/p/results.csv"

expect_exit "missing directory" 2 "not a directory" "$T/m/nope" --no-draw
expect_exit "no results.csv" 2 "no results.csv found" "$T/m/empty_dir" --no-draw
expect_exit "empty file" 2 "p/results.csv: empty file, no header" "$T/m/empty" --no-draw
expect_exit "missing column" 2 "lacks the required column 'value'" "$T/m/nocol" --no-draw
expect_exit "short record" 2 "record 2: 12 fields, the header has 13" "$T/m/fields" --no-draw
expect_exit "unquoted comma in a number" 2 "record 2: 14 fields" "$T/m/num" --no-draw
expect_exit "header only" 2 "no result rows" "$T/m/hdr" --no-draw
expect_exit "extra column: report made" 0 "report: 1 results files" "$T/m/extra"
check "extra column noted in summary" grep -q "extra columns ignored: host" "$T/m/extra/summary.md"
check "extra column: figure drawn" $PY files "$T/m/extra" m_d_probe_top1
expect_exit "one bad file among good: exit 2" 2 "1 of 2 results.csv files unusable" "$T/m/mixed"
check "  ... the good one is still reported" $PY files "$T/m/mixed" m_d_probe_top1
check "  ... and the bad one is named in summary.md" grep -q "unusable: bad/results.csv: record 2: 8 fields" "$T/m/mixed/summary.md"
expect_exit "unknown method on one layer: no figure, exit 0" 0 "0 figures" "$T/m/unknown"
check "  ... named in the notes" grep -q 'metric `weird_metric` of method `brand_new` (1 rows) not drawn' "$T/m/unknown/summary.md"
check "  ... listed in index.html" grep -q "<td>weird_metric</td>" "$T/m/unknown/index.html"
check "  ... no figure files" bash -c "! ls '$T/m/unknown/figures/'* 2>/dev/null"
expect_exit "gnuplot missing" 1 "apt-get install gnuplot-nox" "$T/m/extra" --gnuplot /nonexistent/gnuplot
mkdir -p "$T/nopath"
rm -rf "$T/m/extra/figures"
env PATH="$T/nopath" "$RB" report "$T/m/extra" >/dev/null 2>"$T/stderr"
rc=$?
if [ "$rc" = 1 ] && tail -n 1 "$T/stderr" | grep -q "apt-get install gnuplot-nox"; then ok "gnuplot not on PATH (exit 1)"
else bad "gnuplot not on PATH: exit $rc"; cat "$T/stderr"; fi
check "  ... data and script still written" test -s "$T/m/extra/figures/m_d_probe_top1.gp"
rm -rf "$T/m/extra/figures"
expect_exit "gnuplot failing on every figure" 1 "gnuplot failed on 1 of 1 figures" "$T/m/extra" --gnuplot /bin/false
check "  ... no image and no temporary left" bash -c "! ls '$T/m/extra/figures/'*.png '$T/m/extra/figures/'*tmp* 2>/dev/null"
check "  ... the page says so" grep -q "Not drawn (gnuplot failed)" "$T/m/extra/index.html"
mkdir -p "$T/m/side" && cp -r "$HERE/fixtures/report/weights" "$T/m/side/"
printf 'model,layer,index,singular_value\nm,l,1\n' >"$T/m/side/weights/spectra.csv"
expect_exit "malformed side table: skipped, report made" 0 "report: 1 results files" "$T/m/side"
check "  ... with a one-line warning naming it" grep -q "skipped side table .*spectra.csv: record 2: 3 fields, the header has 4" "$T/stderr"
check "  ... the other side figure still drawn" $PY files "$T/m/side" weights_eigenfilters
expect_exit "bad option" 2 "unknown option" "$T/m/extra" --frobnicate
expect_exit "two directories" 2 "one results directory expected" "$T/m/extra" "$T/m/unknown"

# --------------------------------------------------- 4. real run output
if "$RB" list --subcommands 2>/dev/null | grep -qx run && "$RB" list --subcommands 2>/dev/null | grep -qx gen; then
    R=$T/real
    if "$RB" gen gmm --seed 3 --classes 10 --dim 16 --layers 3 --n-train 300 --n-test 200 --n-ood 100 \
           --model tiny -o "$T/tiny.h5" >"$T/gen.log" 2>&1 &&
       "$RB" run --family probe --bootstrap 50 -o "$R/tiny/probe" "$T/tiny.h5" >"$T/run.log" 2>&1; then
        ok "repbench gen + run on a tiny dump"
        # OOD rows when the ood methods are built (the fast ones).
        if [ "$("$RB" list 2>/dev/null | awk '$2=="ood"{print $1}' | grep -cxE 'ood_maha|ood_knn')" = 2 ]; then
            "$RB" run --family ood --methods ood_maha,ood_knn --bootstrap 50 -o "$R/tiny/ood" "$T/tiny.h5" \
                >"$T/run.log" 2>&1 && ok "repbench run ood (ood_maha,ood_knn)" || bad "repbench run ood"
        fi
        # The logit score and calibration (gen writes /logits), and few-shot episodes.
        if [ "$("$RB" list 2>/dev/null | awk '{print $1}' | grep -cxE 'ood_msp|calib')" = 2 ]; then
            "$RB" run --methods ood_msp,calib --bootstrap 50 -o "$R/tiny/logits" "$T/tiny.h5" \
                >"$T/run.log" 2>&1 && ok "repbench run ood_msp,calib" || bad "repbench run ood_msp,calib"
        fi
        if "$RB" list 2>/dev/null | awk '{print $1}' | grep -qx fewshot; then
            "$RB" run --methods fewshot,curve --fewshot_episodes 20 --fewshot_k 1,5 -o "$R/tiny/curve" "$T/tiny.h5" \
                >"$T/run.log" 2>&1 && ok "repbench run fewshot,curve" || bad "repbench run fewshot,curve"
        fi
        # Geometry rows too when those methods are built (fast ones only).
        GEO=collapse,idim,spectrum,similarity
        if [ "$("$RB" list 2>/dev/null | awk '$2=="geometry"{print $1}' | grep -cxE 'collapse|idim|spectrum|similarity')" = 4 ]; then
            "$RB" run --family geometry --methods $GEO -o "$R/tiny/geometry" "$T/tiny.h5" >"$T/run.log" 2>&1 &&
                ok "repbench run geometry ($GEO)" || bad "repbench run geometry"
        fi
        check "report on real run output" "$RB" report "$R"
        check "real: summary.md numbers equal the CSV's" $PY summary "$R"
        check "real: probe figures valid" $PY files "$R" tiny_gmm_k10_d16_probe_top1 tiny_gmm_k10_d16_probe_balanced_acc
        check "real: index.html complete" $PY index "$R"
        F=$R/figures/tiny_gmm_k10_d16
        if ls "$R/tiny/ood/results.csv" >/dev/null 2>&1; then
            check "real: ROC figure valid, .dat = CSV rows, AUROC in the legend" \
                bash -c "$PY files '$R' tiny_gmm_k10_d16_roc_ood_far && $PY roc '$R' tiny_gmm_k10_d16_roc_ood_far ood_far"
        fi
        if ls "$R/tiny/logits/results.csv" >/dev/null 2>&1; then
            check "real: reliability figure valid, .dat = CSV bins, ECE = bins' weighted gap" \
                bash -c "$PY files '$R' tiny_gmm_k10_d16_reliability_calib_logits &&
                         $PY reliability '$R' tiny_gmm_k10_d16_reliability_calib_logits"
        fi
        if ls "$R/tiny/curve/results.csv" >/dev/null 2>&1; then
            check "real: few-shot bars valid, .dat = CSV rows" \
                bash -c "$PY files '$R' tiny_gmm_k10_d16_fewshot_top1 && $PY fewshot '$R' tiny_gmm_k10_d16_fewshot_top1"
            check "real: curve learning curves valid, .dat = CSV rows, law = the fit rows" \
                bash -c "$PY files '$R' tiny_gmm_k10_d16_learning_curve_error &&
                         $PY lcurve '$R' tiny_gmm_k10_d16_learning_curve_error"
        fi
        check "real: no sweep figure of roc_tpr, reliability or learning-curve rows" \
            bash -c "! ls '$F'_sweep_roc_tpr* '$F'_sweep_reliability* '$F'_sweep_error* 2>/dev/null"
    else
        bad "repbench gen/run on a tiny dump"; sed 's/^/     /' "$T/gen.log" "$T/run.log" | tail -5
    fi
else
    bad "real run output: the run/gen subcommands are not built (a missing subcommand fails, it is not skipped)"
fi

# ------------------------------------------------------------ 5. chromium
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing chromium (apt) for the page check ..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >"$T/apt.log" 2>&1
fi
if command -v chromium >/dev/null 2>&1; then
    UD=$(mktemp -d "$T/chromium.XXXXXX")
    timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync --user-data-dir="$UD" \
        --enable-logging=stderr --v=0 --dump-dom "file://$B/index.html" >"$T/dom.html" 2>"$T/chromium.log"
    rc=$?
    check "chromium renders index.html (exit $rc)" test "$rc" = 0
    check "  ... without console messages" $PY console "$T/chromium.log"
    n=$(grep -o '<figure id=' "$T/dom.html" | wc -l)
    check "  ... the DOM holds all $NFIG figures (got $n)" test "$n" = $NFIG
else
    echo "SKIP chromium page check: chromium is not installed and could not be installed with apt"
fi

# The module's files call one another without a cycle: report.c drives the
# figure families, which use figs_base.c / figs_common.c and never the
# driver (the object files' defined and undefined symbols, with nm).
objdir=$(dirname "$RB")
case $objdir in */bin|bin) objdir=${objdir%bin}build ;; esac
if [ -f "$objdir/reports/report.o" ] && command -v nm >/dev/null; then
    if "${PYTHON:-/usr/bin/python3}" - "$objdir/reports" <<'PY'
import glob, os, subprocess, sys
objs = sorted(glob.glob(os.path.join(sys.argv[1], "*.o")))
defs, uses = {}, {}
for o in objs:
    out = subprocess.run(["nm", o], capture_output=True, text=True).stdout.split("\n")
    defs[o] = {l.split()[-1] for l in out if len(l.split()) == 3 and l.split()[1] in "TDRB"}
    uses[o] = {l.split()[-1] for l in out if len(l.split()) == 2 and l.split()[0] == "U"}
edges = {a: {b for b in objs if b != a and uses[a] & defs[b]} for a in objs}
state = {}
def dfs(a, path):
    state[a] = 1
    for b in edges[a]:
        if state.get(b) == 1:
            print("cycle:", " -> ".join(os.path.basename(x) for x in path + [a, b])); sys.exit(1)
        if not state.get(b):
            dfs(b, path + [a])
    state[a] = 2
for o in objs:
    if not state.get(o):
        dfs(o, [])
drv = os.path.join(sys.argv[1], "report.o")
assert not any(drv in edges[o] for o in objs if o != drv), "a figure file calls report.c"
PY
    then ok "reports/ call graph has no cycle (report.c drives; figure files never call it)"
    else bad "reports/ call graph has a cycle"; fi
fi

echo "cli_report: $pass passed, $failn failed"
[ "$failn" = 0 ]
