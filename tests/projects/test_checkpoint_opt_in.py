"""`--awml-unsafe-load` (config key `unsafe_load`) reaches every project's checkpoint
loading, and a refused checkpoint names the opt-in (issue 12, item 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from awml_harness.checkpoint import CheckpointError
from awml_harness.config.load import load_deploy_config
from awml_harness.project import load_project_class

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = ["CenterPoint", "YOLOX_opt_elan", "CalibrationStatusClassification", "SemanticSegmentation"]


def _adapter(project: str, checkpoint: Path, unsafe: bool):
    cfg = load_deploy_config(ROOT / "projects" / project / "configs" / "deploy_config.py", base_dir=ROOT,
                             overrides=[f"checkpoint_path={checkpoint}"], unsafe_load=unsafe)
    return load_project_class(cfg.project, [ROOT])(cfg)


@pytest.mark.parametrize("project", PROJECTS)
def test_a_checkpoint_needing_full_unpickling_loads_only_with_the_opt_in(tmp_path, project):
    shipped = _adapter(project, _checkpoint(project), False).build_model()
    state = torch.load(_checkpoint(project), map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    pickled = tmp_path / "epoch_3.pth"
    # an OpenMMLab-style checkpoint whose meta holds a non-tensor object, as training tools write
    torch.save({"state_dict": state, "meta": {"work_dir": Path("/work/dirs/run")}}, pickled)

    with pytest.raises(CheckpointError, match=r"epoch_3.pth needs full unpickling.*--awml-unsafe-load"):
        _adapter(project, pickled, False).build_model()
    model = _adapter(project, pickled, True).build_model()
    got, want = model.state_dict(), shipped.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)


def _checkpoint(project: str) -> Path:
    """The shipped checkpoint: under fixtures/ for the first three, in its own folder for
    a project added by files under projects/ alone."""
    fixture = {"CenterPoint": "centerpoint", "YOLOX_opt_elan": "yolox",
               "CalibrationStatusClassification": "calibration"}.get(project)
    return ROOT / "fixtures" / fixture / "checkpoint.pth" if fixture else ROOT / "projects" / project / "checkpoint.pth"
