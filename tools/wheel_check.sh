#!/usr/bin/env bash
# The harness as a user gets it, no clone: build the wheel from this repository's working
# tree, install it with its dependencies into a fresh virtual environment in a temp dir,
# then from an empty folder
#   1. run the main job on the embedded default (`pytest --pyargs awml_harness.suites`:
#      the four shipped projects on their shipped data),
#   2. check that a user's own tests there load no deploy config,
#   3. build and install a separate tiny package that registers a project through the
#      entry-point group awml_harness.projects, and run the suites on its deploy config.
# Exits non-zero when any step fails. AWML_WHEEL_CHECK_KEEP=1 keeps the temp dir.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/awml-wheel-check.XXXXXX")"
if [[ "${AWML_WHEEL_CHECK_KEEP:-0}" == 1 ]]; then
    trap 'echo "wheel_check: kept $work"' EXIT
else
    trap 'rm -rf "$work"' EXIT
fi
# nothing of the calling environment may reach the fresh one
unset VIRTUAL_ENV PYTHONPATH PYTHONHOME PYTEST_ADDOPTS PYTEST_PLUGINS
start=$SECONDS
step() { printf '\n== wheel_check [%4ss] %s\n' "$((SECONDS - start))" "$*"; }
fail() { echo "wheel_check: FAILED: $*" >&2; exit 1; }
expect() {  # expect LOG PATTERN...: every pattern is a line of LOG
    local log="$1"; shift
    for pattern in "$@"; do grep -q -- "$pattern" "$log" || fail "no line matching '$pattern' in $log"; done
}

step "copy the working tree (tracked and untracked files git does not ignore) to $work/src"
mkdir "$work/src"
git -C "$repo" ls-files -z -co --exclude-standard \
    | (cd "$repo" && tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$work/src"

step "fresh virtual environment outside any checkout: $work/venv"
"$python" -m venv "$work/venv"
py="$work/venv/bin/python"

step "build the wheel"
"$py" -m pip wheel -q --no-deps -w "$work/dist" "$work/src"
wheels=("$work"/dist/awml_harness-*.whl)
[[ ${#wheels[@]} == 1 && -f "${wheels[0]}" ]] || fail "expected one awml_harness wheel in $work/dist"
wheel="${wheels[0]}"
echo "wheel: $(basename "$wheel"), $(du -k "$wheel" | cut -f1) kB"
if "$py" -m zipfile -l "$wheel" | grep -E '^(projects|fixtures)/|^awml_projects/fixtures/.*\.py '; then
    fail "the wheel holds a top-level projects/ or fixtures/, or fixtures' scripts (above)"
fi

step "install it with its dependencies: torch==2.13.0 (the CPU wheel) and awml-harness[cpu,projects]"
"$py" -m pip install -q torch==2.13.0 "${wheel}[cpu,projects]"

run="$work/run"
mkdir "$run"
cd "$run"
if git rev-parse --show-toplevel >/dev/null 2>&1; then fail "$run is inside a git checkout"; fi
if "$py" -c "import projects" 2>/dev/null; then fail "a top-level package 'projects' is importable"; fi

step "main job on the embedded default: pytest --pyargs awml_harness.suites (in the empty folder $run)"
if ! "$py" -m pytest --pyargs awml_harness.suites -q -p no:cacheprovider 2>&1 | tee "$work/default.log"; then
    fail "the main job on the embedded default"
fi
expect "$work/default.log" "^awml CalibrationStatusClassification (" "^awml YOLOX_opt_elan (" \
    "^awml CenterPoint (" "^awml SemanticSegmentation (" "^awml metrics JSON: $run/work_dirs/"
site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
[[ ! -e "$site/work_dirs" && ! -e "$site/awml_projects/work_dirs" ]] || fail "the run wrote into site-packages"

step "a user's own tests beside the installed harness load no deploy config"
mkdir "$work/user_tests"
cat > "$work/user_tests/test_mine.py" <<'EOF'
import sys

from awml_harness.stash_keys import SESSION_KEY


def test_no_harness_session(request):
    assert request.config.stash.get(SESSION_KEY, None) is None
    assert "torch" not in sys.modules
EOF
(cd "$work/user_tests" && "$py" -m pytest -q -p no:cacheprovider test_mine.py) || fail "a user's own tests"

step "a separate tiny package registering the project LinearDemo in awml_harness.projects"
tiny="$work/tiny"
mkdir -p "$tiny/awml_linear_demo"
cat > "$tiny/pyproject.toml" <<'EOF'
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "awml-linear-demo"
version = "0.1.0"
dependencies = ["awml-harness"]

[project.entry-points."awml_harness.projects"]
LinearDemo = "awml_linear_demo.project:Project"

[tool.setuptools]
packages = ["awml_linear_demo"]
EOF
: > "$tiny/awml_linear_demo/__init__.py"
cat > "$tiny/awml_linear_demo/project.py" <<'EOF'
"""A linear classifier on synthetic features: the smallest awml-harness project that lives in
its own installed package. Its labels are the classifier's own decisions on a fixed random
weight matrix, so every backend should score accuracy 1.0 and agree to fp32 rounding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from awml_harness.config.errors import ConfigError
from awml_harness.graph import Graph, ShapeRange
from awml_harness.project import Evaluator, Prepared, ProjectAdapter


@dataclass(frozen=True)
class LinearSettings:
    features: int = 8
    classes: int = 3
    num_samples: int = 12
    seed: int = 0

    def validate(self, key: str) -> None:
        if self.classes < 2:
            raise ConfigError(f"{key}.classes", self.classes, "an integer >= 2")


class Accuracy(Evaluator):
    headline = "accuracy"
    directions = {"accuracy": "higher"}

    def __init__(self) -> None:
        self.hits: list[bool] = []

    def add(self, sample_id: str, prediction: Any, target: Any) -> None:
        self.hits.append(int(prediction) == int(target))

    def compute(self) -> dict[str, Any]:
        return {"accuracy": float(np.mean(self.hits)) if self.hits else 0.0, "num_samples": len(self.hits)}


class Project(ProjectAdapter):
    name = "LinearDemo"
    task_type = "classification"
    settings_cls = LinearSettings

    def _weights(self) -> np.ndarray:
        s = self.settings
        return np.random.default_rng(s.seed).standard_normal((s.classes, s.features)).astype(np.float32)

    def build_model(self) -> Any:
        import torch

        model = torch.nn.Linear(self.settings.features, self.settings.classes)
        with torch.no_grad():
            model.weight.copy_(torch.from_numpy(self._weights()))
            model.bias.zero_()
        return model.eval()

    def has_dynamic_shapes(self) -> bool:
        return True  # the graph's batch axis is dynamic: test_shapes sweeps its profile

    def graph_names(self) -> tuple[str, ...]:
        return ("linear",)

    def graphs(self, model: Any) -> list[Graph]:
        n = self.settings.features
        example = self.preprocess(self.dataset()[0]).inputs["features"]
        profile = {"features": ShapeRange((1, n), (2, n), (4, n))}
        return [Graph("linear", model, {"features": example}, ("features",), ("logits",),
                      dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}}, profiles=(profile,))]

    def dataset(self) -> list[dict[str, Any]]:
        rng = np.random.default_rng(self.settings.seed + 1)
        x = rng.standard_normal((self.settings.num_samples, self.settings.features)).astype(np.float32)
        labels = np.argmax(x @ self._weights().T, axis=1)
        return [{"id": f"s{i}", "x": x[i], "label": int(labels[i])} for i in range(len(x))]

    def target(self, sample: Any) -> Any:
        return sample["label"]

    def preprocess(self, sample: Any) -> Prepared:
        return Prepared(sample["id"], {"features": sample["x"][None]})

    def postprocess(self, outputs: Any, prepared: Prepared) -> Any:
        return int(np.argmax(outputs["logits"][0]))

    def evaluator(self) -> Evaluator:
        return Accuracy()
EOF
# the user's deploy config, in their own folder: no projects/ folder anywhere above it
cat > "$run/linear_deploy.py" <<'EOF'
project = "LinearDemo"  # registered by the awml-linear-demo distribution
task_type = "classification"
model_cfg = dict(features=8, classes=3, num_samples=12)
export = dict(mode="onnx", work_dir="work_dirs/linear_demo")
verification = dict(
    num_verify_samples=2,
    default=dict(atol=1e-5, rtol=1e-4),
    scenarios=dict(onnx=[dict(ref_backend="pytorch", ref_device="cpu", test_backend="onnx", test_device="cpu")]),
)
evaluation = dict(
    backends=dict(pytorch=dict(device="cpu"), onnx=dict(device="cpu")),
    metric_tolerance={"*": 0.0},
    latency_rounds=5,
    latency_warmup=1,
)
EOF
"$py" -m pip wheel -q --no-deps -w "$work/tiny_dist" "$tiny"
"$py" -m pip install -q "$work"/tiny_dist/awml_linear_demo-*.whl

step "the suites on the registered project: pytest --pyargs awml_harness.suites --deploy-cfg linear_deploy.py"
if ! "$py" -m pytest --pyargs awml_harness.suites --deploy-cfg linear_deploy.py -q -p no:cacheprovider 2>&1 \
        | tee "$work/linear.log"; then
    fail "the suites on the project registered by awml-linear-demo"
fi
expect "$work/linear.log" "^awml LinearDemo (classification, export onnx)" "verification: 2/2 passed" \
    "^awml metrics JSON: $run/work_dirs/linear_demo/metrics.json"

step "passed: the wheel runs the embedded default and a project registered by a separate package"
