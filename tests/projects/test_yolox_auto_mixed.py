"""precision_policy="auto_mixed" on the YOLOX CI config (issue 18, item 3): at a fp16
tolerance where plain fp16 fails verification, the searched mixed graph passes it, the
chosen fp32 nodes and the fp16 metric deltas are in the metrics JSON, and a warm run
reuses the choice instead of searching again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxconverter_common")

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "projects" / "YOLOX_opt_elan" / "configs" / "deploy_config_auto_mixed.py"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (ROOT / "fixtures/yolox/checkpoint.pth").is_file(),
                                                    reason="YOLOX checkpoint not generated")]


def _run(tmp_path: Path, name: str, *args: str) -> tuple[dict, subprocess.CompletedProcess]:
    out = tmp_path / f"{name}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-p", "no:randomly",
         "--deploy-cfg", str(CONFIG), "--work-dir", str(tmp_path / "wd"), "--awml-metrics-json", str(out), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc


def _fp16_results(doc: dict) -> list[dict]:
    results = doc["projects"]["YOLOX_opt_elan"]["verification"]["results"]
    return [r for r in results if r["test"] == "onnx-fp16:cpu"]


def test_auto_mixed_passes_where_plain_fp16_fails(tmp_path):
    from awml_harness.report.document import validate_document

    verify = ["suites/test_verification.py", "-k", "onnx-fp16"]
    plain, proc = _run(tmp_path, "plain", *verify, "--cfg-options", "backend_config.common_config.precision_policy=auto")
    fp16 = _fp16_results(plain)
    assert len(fp16) == 3 and not all(r["passed"] for r in fp16) and proc.returncode == 1, proc.stdout[-2000:]
    assert "auto_mixed" not in plain["projects"]["YOLOX_opt_elan"]

    mixed, proc = _run(tmp_path, "mixed", *verify, "suites/test_evaluation.py")
    assert proc.returncode == 0, proc.stdout[-3000:]
    results = _fp16_results(mixed)
    assert len(results) == 3 and all(r["passed"] for r in results)
    assert all(leaf["atol"] == 2e-3 and leaf["rtol"] == 2e-3 for r in results for leaf in r["leaves"])
    validate_document(mixed)
    entry = mixed["projects"]["YOLOX_opt_elan"]["auto_mixed"]
    count, candidates = entry["fp32_node_count"], entry["candidates"]["yolox"]
    assert 0 < count < candidates // 4, entry  # a few nodes, not "everything in fp32"
    assert len(entry["fp32_nodes"]["yolox"]) == count and not entry["plain_fp16_passed"]
    assert entry["criterion"] == "pytorch:cpu-vs-onnx-fp16:cpu" and entry["reused"] is False
    assert entry["tolerances"]["pair_outputs"] == {"pytorch->onnx-fp16": {"output": {"atol": 2e-3, "rtol": 2e-3, "max_mismatch_share": 0.0}}}
    deltas = entry["metric_deltas"]["onnx-fp16"]
    assert deltas == mixed["projects"]["YOLOX_opt_elan"]["evaluation"]["backends"]["onnx-fp16"]["deltas"] and deltas
    print(f"auto_mixed: {count} of {candidates} nodes kept in fp32, {entry['evaluations']} evaluations, "
          f"{entry['search_seconds']} s: {entry['fp32_nodes']['yolox']}")

    warm, proc = _run(tmp_path, "warm", *verify)
    again = warm["projects"]["YOLOX_opt_elan"]["auto_mixed"]
    assert proc.returncode == 0 and again["reused"] is True and again["fp32_nodes"] == entry["fp32_nodes"]
