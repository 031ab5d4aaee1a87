"""P6 worker: evaluate N samples of the small calibration config, print peak RSS.

    python -m benchmarks.rss_eval 10000

Runs the harness's own evaluation pass (ProjectContext.evaluate_all) in this fresh
process with the ONNX Runtime backend as the only backend and reference (the 40
shipped samples served N/40 times: model_cfg.dataset_repeat), then prints one JSON line
with ru_maxrss (MB), seconds and accuracy.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "projects/CalibrationStatusClassification/configs/deploy_config.py"


def main() -> None:
    n = int(sys.argv[1])
    sys.path.insert(0, str(ROOT))
    from benchmarks.replay import load_context

    overrides = (f"model_cfg.dataset_repeat={math.ceil(n / 40)}", f"evaluation.num_samples={n}",
                 "evaluation.backends={'onnx': {'device': 'cpu'}}", "evaluation.reference='onnx'")
    ctx = load_context(CONFIG, ROOT, overrides)
    start = time.perf_counter()
    result = ctx.evaluate_all()["onnx"]
    seconds = time.perf_counter() - start
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"samples": result["num_samples"], "maxrss_mb": rss_kb / 1024, "seconds": seconds,
                      "accuracy": result["metrics"]["accuracy"]}))


if __name__ == "__main__":
    main()
