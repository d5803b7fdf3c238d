#!/usr/bin/env bash
# The device check (issue #16): one command for a lent GPU machine, within a time budget it keeps itself.
#
#   bash bench/gpu_check.sh              # on a CUDA machine: install, tests on the GPU, benchmarks, summary
#   bash bench/gpu_check.sh --dry-run    # anywhere: every step on the CPU (interpreter, emulated graphs, tiny sizes)
#
# Steps: (1) `pip install --no-deps --no-build-isolation -e .` (not in a dry run); (2) pytest on the graph tests
# (tests/test_cuda_graphs.py, test_graphs.py, test_fusion.py, test_determinism.py) and tests/kernels/, on CUDA
# tensors with the real Triton kernels and CUDA graphs (a dry run: a -k subset of the kernel tests under
# TRITON_INTERPRET=1 and the emulated graphs); (3) bench/dense.py, xent.py, optim.py, train.py and fused_mlp.py
# with sizes cut to the budget (a dry run: --dry-run, tiny sizes); (4) bench/gpu_summary.py writes $OUT/summary.md and appends the run
# to RESULTS.md. Every step gets a `timeout` from what is left of the budget, keeping the planned seconds of the
# steps after it in reserve (a step that finishes early leaves its time to the next ones); a step that runs out
# is stopped with SIGINT (pytest still writes its junit report; the benchmarks keep the rows they wrote) and is
# reported as such.
#
# Environment: OUT (default: a fresh temp dir), PYTHON (default python3), GPU_CHECK_BUDGET (seconds; default 480,
# dry run 300). Files under $OUT (at most 8): summary.md, RESULTS.md, tests.log, bench.log, junit.xml,
# bench.jsonl, train.png. RESULTS.md: on a GPU the scripts and the summary append to the repo's bench/RESULTS.md,
# copied to $OUT afterwards; a dry run leaves the repo's file alone and appends to a copy under $OUT.
#
# Exit code (after the summary is written): 0 all passed; 1 a test failed, a step crashed or the install failed;
# 3 nothing failed but a step ran out of time; 2 usage, or no CUDA GPU without --dry-run.

set -uo pipefail

DRY_RUN=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h | --help)
            sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "bench/gpu_check.sh: unknown argument '$arg' (use --dry-run or --help)" >&2
            exit 2
            ;;
    esac
done

PYTHON=${PYTHON:-python3}
if ((!DRY_RUN)) && ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null
then
    echo "bench/gpu_check.sh: no CUDA GPU visible to $PYTHON; 'bash bench/gpu_check.sh --dry-run' rehearses" \
        "every step on the CPU." >&2
    exit 2
fi
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")}
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd) # absolute, before the cd below
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check_work.XXXXXX") || exit 2
trap 'rm -rf "$WORK"' EXIT
COMMAND="bash bench/gpu_check.sh${*:+ $*}"

export PYTHONUNBUFFERED=1
unset TRITONNN_BACKEND
if ((DRY_RUN)); then
    export CUDA_VISIBLE_DEVICES="" # the CPU even on a GPU machine: the interpreter cannot run on CUDA tensors
    export TRITON_INTERPRET=1
    export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 # steadier on a few busy cores
    BUDGET=${GPU_CHECK_BUDGET:-300}
    RESULTS="$OUT/RESULTS.md"
    cp bench/RESULTS.md "$RESULTS" || exit 2
else
    unset TRITON_INTERPRET
    BUDGET=${GPU_CHECK_BUDGET:-480}
    RESULTS="$REPO/bench/RESULTS.md"
fi

TESTS_LOG="$OUT/tests.log"
BENCH_LOG="$OUT/bench.log"
JUNIT="$OUT/junit.xml"
JSON="$OUT/bench.jsonl"
STEPS="$WORK/steps.tsv"
: >"$TESTS_LOG"
: >"$BENCH_LOG"
: >"$JSON"
: >"$STEPS"
rm -f "$JUNIT"

# Planned seconds per step, in order: a step's limit is what is left of the budget less the plans of the steps
# after it and the summary's reserve. GPU: the tests (Triton compiles every kernel variant they launch; pytest-xdist
# spreads them over the cores when installed) and train.py (torch.compile's peers compile per model and dtype) get
# most; the three kernel benchmarks are cut to a few shapes each.
STEP_NAMES=(install tests dense xent optim train fused_mlp)
declare -A PLAN
if ((DRY_RUN)); then
    PLAN=([install]=0 [tests]=140 [dense]=30 [xent]=25 [optim]=25 [train]=50 [fused_mlp]=15)
    SUMMARY_RESERVE=15
else
    PLAN=([install]=20 [tests]=180 [dense]=40 [xent]=25 [optim]=25 [train]=130 [fused_mlp]=40)
    SUMMARY_RESERVE=20
fi
# The plans above fill the default budget; another GPU_CHECK_BUDGET scales them all alike.
PLAN_TOTAL=$SUMMARY_RESERVE
for s in "${STEP_NAMES[@]}"; do
    PLAN_TOTAL=$((PLAN_TOTAL + PLAN[$s]))
done
for s in "${STEP_NAMES[@]}"; do
    PLAN[$s]=$((PLAN[$s] * BUDGET / PLAN_TOTAL))
done
SUMMARY_RESERVE=$((SUMMARY_RESERVE * BUDGET / PLAN_TOTAL))
MIN_STEP=5
START=$SECONDS

reserve_after() { # the planned seconds of the steps after $1, plus the summary's reserve
    local total=$SUMMARY_RESERVE seen=0 s
    for s in "${STEP_NAMES[@]}"; do
        ((seen)) && total=$((total + PLAN[$s]))
        [[ $s == "$1" ]] && seen=1
    done
    echo "$total"
}

record() { # name, status, exit code, seconds, limit, command: one line of the steps file gpu_summary.py reads
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$STEPS"
}

show() { # the command as one would type it (a word with blanks or quotes in single quotes), $OUT for the folder
    local out="" word
    for word in "$@"; do
        if [[ $word =~ ^[][A-Za-z0-9_./=:,+@%-]+$ ]]; then
            out+=" $word"
        else
            out+=" '$(printf '%s' "$word" | sed "s/'/'\\\\''/g")'"
        fi
    done
    out=${out# }
    printf '%s\n' "${out//"$OUT"/\$OUT}"
}

run_step() { # run_step NAME LOG COMMAND...: run COMMAND under the step's time limit, its output appended to LOG
    local name=$1 log=$2
    shift 2
    local shown limit t0 rc took status
    shown=$(show "$@")
    limit=$((BUDGET - (SECONDS - START) - $(reserve_after "$name")))
    if ((limit < MIN_STEP)); then
        record "$name" "no time left (${limit}s)" "-" 0 "$limit" "$shown"
        echo "== $name: not run, no time left of the ${BUDGET}s budget" | tee -a "$log"
        return
    fi
    echo "== $name (limit ${limit}s, $((SECONDS - START))s into the budget): $shown" | tee -a "$log"
    t0=$SECONDS
    timeout -s INT -k 10 "$limit" "$@" >>"$log" 2>&1
    rc=$?
    took=$((SECONDS - t0))
    case $rc in
        0) status=ok ;;
        124 | 137) status="timeout after ${limit}s" ;;
        *) status="failed (exit $rc)" ;;
    esac
    record "$name" "$status" "$rc" "$took" "$limit" "$shown"
    echo "== $name: $status in ${took}s" | tee -a "$log"
}

# 1. install
if ((DRY_RUN)); then
    record install "skipped (dry run: $PYTHON as it is)" "-" 0 0 "-"
    echo "== install: skipped in a dry run (using $PYTHON as it is)" | tee -a "$TESTS_LOG"
else
    run_step install "$TESTS_LOG" "$PYTHON" -m pip install --no-deps --no-build-isolation -e .
fi

# 2. tests: the graph files first, so that they are scheduled before the long kernel list; a file that fails to
# import is reported as an error while the others run
PYTEST=("$PYTHON" -m pytest -p no:cacheprovider -q -rfE --continue-on-collection-errors -o junit_family=xunit1
    "--junitxml=$JUNIT")
GRAPH_TESTS=(tests/test_cuda_graphs.py tests/test_graphs.py tests/test_fusion.py tests/test_determinism.py
    tests/test_fused_mlp_fit.py)
if ((DRY_RUN)); then
    # A subset of the kernel tests on the triton backend (the interpreter): dense with three activations in every
    # dtype, fused dropout, tf32, the aligned path, dropout, every optimizer rule, cross-entropy, softmax, layer
    # norm. The graph files run whole (their emulated variants).
    KERNELS_K='triton and (dense_matches_float64 and (relu- or gelu- or tanh-) or fused_dropout_matches_float64 and gelu'
    KERNELS_K+=' or tf32_switch or aligned_fast_path and gelu or inverted_dropout and dtype0 or update_matches'
    KERNELS_K+=' or xent_matches and labels and mean or softmax_matches or layer_norm_forward and shape0)'
    KERNELS_K+=' or test_cuda_graphs or test_graphs or test_fusion or test_determinism or test_fused_mlp_fit'
    run_step tests "$TESTS_LOG" "${PYTEST[@]}" "${GRAPH_TESTS[@]}" tests/kernels -k "$KERNELS_K"
else
    XDIST=()
    if "$PYTHON" -c 'import xdist' 2>/dev/null; then
        WORKERS=$(($(nproc) - 2))
        ((WORKERS > 14)) && WORKERS=14
        ((WORKERS >= 2)) && XDIST=(-n "$WORKERS")
    fi
    run_step tests "$TESTS_LOG" "${PYTEST[@]}" "${XDIST[@]}" "${GRAPH_TESTS[@]}" tests/kernels
fi

# 3. benchmarks
NOTES=()
if ((DRY_RUN)); then
    run_step dense "$BENCH_LOG" "$PYTHON" bench/dense.py --dry-run --dtypes fp32,bf16 --json "$JSON" --results "$RESULTS"
    run_step xent "$BENCH_LOG" "$PYTHON" bench/xent.py --dry-run --json "$JSON" --results "$RESULTS"
    run_step optim "$BENCH_LOG" "$PYTHON" bench/optim.py --dry-run --json "$JSON" --results "$RESULTS"
    run_step train "$BENCH_LOG" "$PYTHON" bench/train.py --cases seed:fp32 --peers tritonnn,torch,keras-torch \
        --epochs 1 --threads 1 --json "$JSON" --results "$RESULTS" --plot "$OUT/train.png"
    run_step fused_mlp "$BENCH_LOG" "$PYTHON" bench/fused_mlp.py --dry-run --seed-model --providers fused,torch \
        --dtype fp32 --no-save
else
    # dense: bf16 and tf32, fwd and fwd+bwd at --quick's three shapes, against torch eager. torch.compile
    # (max-autotune) is left out: its autotuning compiles per shape take minutes; `python bench/dense.py --quick`
    # has it.
    NOTES+=("dense: torch.compile (max-autotune) is left out of the GPU check (its autotuning takes minutes per"
        "shape); \`python bench/dense.py --quick\` times it")
    run_step dense "$BENCH_LOG" "$PYTHON" bench/dense.py --dtypes bf16,tf32 --modes fwd,fwd+bwd \
        --shapes 1024x1024x4096,4096x4096x4096,16384x4096x4096 --providers tritonnn,torch \
        --json "$JSON" --results "$RESULTS"
    # xent: three of the six default shapes (a small vocabulary, 32K, 128K), every provider
    run_step xent "$BENCH_LOG" "$PYTHON" bench/xent.py --shapes 4096x1000,8192x32768,8192x131072 \
        --json "$JSON" --results "$RESULTS"
    # optim: Adam at 1e7 and 1e9 parameters (of the default 1e5..1e9), every provider
    run_step optim "$BENCH_LOG" "$PYTHON" bench/optim.py --counts 1e7,1e9 --json "$JSON" --results "$RESULTS"
    # train: seed fp32, classic fp32 and bf16, wide bf16; every peer (Keras' are skipped where keras is missing)
    run_step train "$BENCH_LOG" "$PYTHON" bench/train.py --cases seed:fp32,classic:fp32,classic:bf16,wide:bf16 \
        --epochs 2 --json "$JSON" --results "$RESULTS" --plot "$OUT/train.png"
    # fused MLP (#17): the seed model and a 64-64-64 stack, training step, every provider, launches counted; its
    # rows go to RESULTS.md under its own section (the script appends them; no --json rows for the summary yet)
    run_step fused_mlp "$BENCH_LOG" bash -c "$PYTHON bench/fused_mlp.py --seed-model --batches 32,4096,65536 \
        --dtype fp32 --count-launches && $PYTHON bench/fused_mlp.py --widths 64 --batches 4096,65536 --dtype bf16 \
        --count-launches"
fi

# 4. summary (always)
SUMMARY_ARGS=(--steps "$STEPS" --junit "tests=$JUNIT" --json "$JSON" --out "$OUT/summary.md"
    --results "$RESULTS" --command "$COMMAND" --budget "$BUDGET")
if ((${#NOTES[@]})); then
    SUMMARY_ARGS+=(--note "${NOTES[*]}")
fi
echo "== summary ($((SECONDS - START))s into the ${BUDGET}s budget)"
"$PYTHON" bench/gpu_summary.py "${SUMMARY_ARGS[@]}"
code=$?
if ((!DRY_RUN)); then
    cp "$RESULTS" "$OUT/RESULTS.md"
fi
if [[ ! -s "$OUT/summary.md" ]]; then # the summary itself crashed: say so in the file the reader opens first
    {
        echo "# GPU check: the summary could not be written (bench/gpu_summary.py exit $code)"
        echo
        cat "$STEPS"
    } >"$OUT/summary.md"
    code=1
fi
FILES=("$OUT"/*)
echo "== done in $((SECONDS - START))s: exit $code; files in $OUT: ${FILES[*]##*/}"
exit "$code"
