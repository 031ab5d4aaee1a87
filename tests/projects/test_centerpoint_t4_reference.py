"""metric="t4" equals tier4 perception_eval itself, when it is importable.

perception_eval is not on PyPI (AWML installs it from git at a pinned commit); the
docstring of benchmarks/t4_metric_compare.py shows how to put it on the path. The rules
are also tested on paper in test_centerpoint_metrics.py, which needs nothing extra.
"""

from __future__ import annotations

import math

import pytest

from benchmarks import t4_metric_compare as cmp

pytest.importorskip("perception_eval", reason="perception_eval (tier4, not on PyPI) is not on the path; "
                    "see benchmarks/t4_metric_compare.py")


@pytest.mark.parametrize("matching", cmp.MATCHERS)
def test_t4_metric_equals_perception_eval_on_random_scenes(matching: str) -> None:
    frames = cmp.random_scenes(12, seed=7, noise=0.3 if matching.startswith("iou_") else 1.0)
    got = cmp.ours(frames, cmp.CLASSES, matching)
    ref = cmp.reference(frames, cmp.CLASSES, matching)
    assert set(got) == set(ref)
    for name, r in ref.items():
        g = got[name]
        pairs = [(g["mAP"], r["mAP"]), (g["mAPH"], r["mAPH"])]
        pairs += [(g["per_class_AP"][c], v) for c, v in r["per_class_AP"].items()]
        pairs += [(g["per_class_APH"][c], v) for c, v in r["per_class_APH"].items()]
        pairs += [(g["AP_by_class_and_distance"][k], v) for k, v in r["AP_by_class_and_distance"].items()]
        for a, b in pairs:
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-9), name
