#!/usr/bin/env bash
# GPU smoke run: the GPU-capable part of the suites, for every shipped deploy config.
#
#   tools/gpu_smoke.sh [OUT_DIR] [--dry-run] [--no-strict]
#
# Run from the repo root on a machine with CUDA PyTorch. Per config it verifies
# pytorch:cpu vs pytorch:cuda:0 and pytorch:cpu vs onnx:cpu, evaluates and times
# pytorch on cuda:0 (and onnx on cpu), and, when `import tensorrt` works, also builds
# engines (export.mode=both) and verifies / evaluates / times tensorrt on cuda:0.
# --awml-strict is on, so a CUDA or TensorRT test that cannot run fails instead of
# skipping. Writes OUT_DIR/<project>.json (metrics JSON) and OUT_DIR/<project>.log,
# then prints a summary; exits non-zero when any config's pytest run failed.
#
# Environment: PYTHON (default python3), AWML_SMOKE_DEVICE (default cuda:0),
# AWML_SMOKE_CONFIGS (space-separated config paths), AWML_SMOKE_PYTEST_ARGS (extra args),
# AWML_SMOKE_WORK_DIR (artifact cache, default OUT_DIR/work), AWML_SMOKE_CUDA_TOL
# (atol and rtol of pytorch:cpu vs pytorch:cuda, default 1e-3).
set -uo pipefail

OUT_DIR=""
DRY_RUN=0
STRICT=(--awml-strict)
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        --no-strict) STRICT=() ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        -*) echo "gpu_smoke: unknown option $arg" >&2; exit 2 ;;
        *) [ -z "$OUT_DIR" ] && OUT_DIR="$arg" || { echo "gpu_smoke: one OUT_DIR only" >&2; exit 2; } ;;
    esac
done
OUT_DIR="${OUT_DIR:-work_dirs/gpu_smoke}"
PY="${PYTHON:-python3}"
DEV="${AWML_SMOKE_DEVICE:-cuda:0}"
WORK_DIR="${AWML_SMOKE_WORK_DIR:-$OUT_DIR/work}"
CUDA_TOL="${AWML_SMOKE_CUDA_TOL:-1e-3}"
read -r -a CONFIGS <<< "${AWML_SMOKE_CONFIGS:-projects/CalibrationStatusClassification/configs/deploy_config.py projects/YOLOX_opt_elan/configs/deploy_config.py projects/CenterPoint/configs/deploy_config.py projects/SemanticSegmentation/configs/deploy_config.py}"
read -r -a EXTRA <<< "${AWML_SMOKE_PYTEST_ARGS:-}"

if [ ! -f pytest.ini ] || [ ! -d suites ]; then
    echo "gpu_smoke: run me from the awml-harness repo root" >&2; exit 2
fi
mkdir -p "$OUT_DIR"
# the harness imports from the checkout even where it is not pip-installed
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

echo "== machine"
if [ "$DRY_RUN" = 1 ]; then
    echo "+ nvidia-smi"
else
    nvidia-smi || echo "nvidia-smi: not available"
fi
"$PY" - "$DEV" <<'EOF'
import sys
try:
    import torch
except ImportError:
    print("torch: not installed"); raise SystemExit(0)
print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
print(f"cuda available: {torch.cuda.is_available()}, devices: {torch.cuda.device_count()}")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"  cuda:{i} {p.name}, {p.total_memory / 2**30:.1f} GiB, sm_{p.major}{p.minor}")
EOF

HAVE_TRT=0
if "$PY" -c "import tensorrt" 2>/dev/null; then
    HAVE_TRT=1
    echo "tensorrt $("$PY" -c 'import tensorrt; print(tensorrt.__version__)'): engines are built (export.mode=both)"
else
    echo "tensorrt: not importable; TensorRT parts are left out"
fi

# the pytest11 entry point exists only where awml-harness is pip-installed
PLUGIN=()
if ! "$PY" -c "import importlib.metadata as m, sys; sys.exit(not any(e.value == 'awml_harness.plugin' for e in m.entry_points(group='pytest11')))" 2>/dev/null; then
    PLUGIN=(-p awml_harness.plugin)
fi

scenario() {  # ref_backend ref_device test_backend test_device -> a Python dict literal
    printf "{'ref_backend': '%s', 'ref_device': '%s', 'test_backend': '%s', 'test_device': '%s'}" "$1" "$2" "$3" "$4"
}
SCEN_CUDA="$(scenario pytorch cpu pytorch "$DEV")"
SCEN_ONNX="$(scenario pytorch cpu onnx cpu)"
SCEN_TRT="$(scenario onnx cpu tensorrt "$DEV")"

declare -A STATUS
for cfg in "${CONFIGS[@]}"; do
    name="$(basename "$(dirname "$(dirname "$cfg")")")"
    if [ ! -f "$cfg" ]; then
        echo "== $name: $cfg not found, skipped"; STATUS[$name]="missing"; continue
    fi
    # The harness's PyTorch runner turns TF32 off on CUDA, so cpu vs cuda compares fp32
    # with fp32; cuDNN still picks other algorithms (summation order) than the CPU, hence a
    # per-output tolerance of AWML_SMOKE_CUDA_TOL for that pair.
    opts=(
        "verification.scenarios.onnx=[$SCEN_CUDA, $SCEN_ONNX]"
        "verification.pair_outputs.pytorch:cpu->pytorch:$DEV={'*': {'atol': $CUDA_TOL, 'rtol': $CUDA_TOL}}"
        "evaluation.backends.pytorch.device=$DEV"
        "evaluation.reference=pytorch"
    )
    if [ "$HAVE_TRT" = 1 ]; then
        opts+=(
            "export.mode=both"
            "verification.scenarios.both=[$SCEN_CUDA, $SCEN_ONNX, $SCEN_TRT]"
            "evaluation.backends.tensorrt={'enabled': True, 'device': '$DEV'}"
        )
    fi
    cmd=("$PY" -m pytest suites/ "${PLUGIN[@]}" --deploy-cfg "$cfg" --cfg-options "${opts[@]}"
         --work-dir "$WORK_DIR" --awml-metrics-json "$OUT_DIR/$name.json" "${STRICT[@]}"
         -p no:cacheprovider -q -ra "${EXTRA[@]}")
    echo "== $name"
    printf '+'; printf ' %q' "${cmd[@]}"; printf '\n'
    if [ "$DRY_RUN" = 1 ]; then
        STATUS[$name]="dry-run"; continue
    fi
    "${cmd[@]}" 2>&1 | tee "$OUT_DIR/$name.log"
    STATUS[$name]="exit ${PIPESTATUS[0]}"
done

echo "== summary ($OUT_DIR)"
rc=0
for cfg in "${CONFIGS[@]}"; do
    name="$(basename "$(dirname "$(dirname "$cfg")")")"
    status="${STATUS[$name]:-not run}"
    echo "-- $name: $status"
    [ "$status" = "exit 0" ] || [ "$status" = "dry-run" ] || rc=1
    [ -f "$OUT_DIR/$name.json" ] || continue
    "$PY" - "$OUT_DIR/$name.json" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
tests = doc["run"].get("tests", {})
print("   tests: " + ", ".join(f"{k} {v}" for k, v in sorted(tests.items())))
gpu = doc.get("machine", {}).get("gpu") or doc.get("machine", {}).get("gpus")
if gpu:
    print(f"   gpu: {gpu}")
for cid, p in doc["projects"].items():
    ver = p["verification"]
    by_scenario = {}
    for r in ver["results"]:
        s = by_scenario.setdefault(r["scenario"], [0, 0])
        s[0 if r.get("passed") else 1] += 1
    print(f"   {cid} verification: {ver['passed']} passed, {ver['failed']} failed")
    for s, (ok, bad) in sorted(by_scenario.items()):
        print(f"     {s}: {ok} passed, {bad} failed")
    for b, e in sorted(p["evaluation"]["backends"].items()):
        m = e.get("metrics") or {}
        shown = ", ".join(f"{k}={v:.4f}" for k, v in list(m.items())[:3] if isinstance(v, (int, float)))
        print(f"     eval {b}: {e.get('status', '')} {shown}".rstrip())
    for b, lat in sorted(p["latency"].items()):
        dev_ms = (lat.get("device_time_ms") or {}).get("median")
        dev = f", device median {dev_ms:.3f} ms" if isinstance(dev_ms, (int, float)) else ""
        print(f"     latency {b} ({lat.get('device')}): median {lat.get('median', float('nan')):.3f} ms, "
              f"p95 {lat.get('p95', float('nan')):.3f} ms{dev}")
EOF
done
exit $rc
