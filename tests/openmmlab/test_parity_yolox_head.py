"""Parity of the YOLOX head with mmdet's YOLOXHead ([mm] extra), the one module AWML's
YOLOX_opt_elan shares with mmdet (its ELAN backbone and PAFPN-ELAN neck are AWML-only;
their key layout is covered by the OpenMMLab round trip). mmdet's head, built by its
registry from the test config with seeded weights, is loaded into the harness's head
through the YOLOX key mapping; every level's class, box and objectness maps agree."""

from __future__ import annotations

import copy

import pytest
from mm_helpers import HERE, NATIVE, load, project_of

from awml_harness.openmmlab import missing_packages

_MISSING = missing_packages("mmcv.ops", "mmdet.models")
pytestmark = pytest.mark.skipif(bool(_MISSING), reason=f"[mm] extra not installed: {'; '.join(_MISSING)}")


def test_yolox_head_matches_mmdet():
    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from awml_harness.openmmlab import remap_state_dict
    from projects.YOLOX_opt_elan.openmmlab import KEY_MAP

    init_default_scope("mmdet")
    cfg = Config.fromfile(str(HERE / "configs/yolox/yolox_opt_elan_small.py"))
    head_cfg = copy.deepcopy(cfg.model.bbox_head)
    head_cfg.update(train_cfg=cfg.model.train_cfg, test_cfg=cfg.model.test_cfg)
    torch.manual_seed(0)
    mm_head = MODELS.build(head_cfg)
    mm_head.init_weights()
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for mod in mm_head.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                for t in (mod.weight, mod.running_var):
                    t.uniform_(0.5, 1.5, generator=g)
                for t in (mod.bias, mod.running_mean):
                    t.uniform_(-0.2, 0.2, generator=g)
    mm_head.eval()

    project = project_of(load(NATIVE["yolox"], "checkpoint_path=None"))
    with pytest.warns(UserWarning):
        model = project.build_model()
    state = remap_state_dict({f"bbox_head.{k}": v for k, v in mm_head.state_dict().items()}, KEY_MAP)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and not [k for k in missing if k.startswith("bbox_head.")]
    model.eval()

    g = torch.Generator().manual_seed(2)
    feats = [torch.randn(1, 32, s, s, generator=g) for s in (24, 12, 6)]  # strides 8, 16, 32 of 192 px
    with torch.no_grad():
        ours = model.bbox_head(feats)
        ref = mm_head(feats)
    for name, a_levels, b_levels in zip(("cls", "bbox", "objectness"), ours, ref, strict=True):
        for level, (a, b) in enumerate(zip(a_levels, b_levels, strict=True)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5, msg=f"{name} level {level}")
