"""The optional [mm] path: the registry builds the reference; skipped without the extra."""

from __future__ import annotations

import pytest
from mm_helpers import DEPLOY, NATIVE, load, project_of, save_openmmlab

from awml_harness.openmmlab import missing_packages

_MISSING = missing_packages("mmpretrain", "mmcv")
pytestmark = pytest.mark.skipif(bool(_MISSING), reason=f"[mm] extra not installed: {'; '.join(_MISSING)}")


def test_calibration_registry_reference_matches_native(tmp_path):
    import torch

    native = project_of(load(NATIVE["calibration"]))
    model = native.build_model()
    ckpt = save_openmmlab(model.state_dict(), tmp_path / "epoch_1.pth")
    cfg = load(DEPLOY["calibration"], f"checkpoint_path={str(ckpt)!r}",
               "model_cfg={'openmmlab': 'configs/calibration/resnet18_5ch_small.py', 'reference': 'registry'}")
    registry = project_of(cfg)
    ref = registry.build_model()
    assert type(ref).__name__ == "RegistryClassifier"
    x = torch.rand(2, 5, 128, 192)
    with torch.no_grad():
        torch.testing.assert_close(ref(x), model(x), rtol=1e-5, atol=1e-5)
