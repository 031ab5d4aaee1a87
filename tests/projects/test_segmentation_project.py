"""SemanticSegmentation: the shipped config, data layout, generator and pipeline."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from awml_harness.config.errors import ConfigError
from awml_harness.config.load import load_deploy_config
from awml_harness.io import DataError
from awml_harness.verification.tolerance import tolerance_for
from projects.SemanticSegmentation.data import CLASS_NAMES, SegDataset, read_label

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "projects" / "SemanticSegmentation"
CONFIG = PROJECT / "configs" / "deploy_config.py"


def test_the_shipped_config_loads_with_its_task_type():
    cfg = load_deploy_config(CONFIG, base_dir=ROOT)
    assert cfg.task_type == "segmentation2d" and cfg.model_settings.class_names == CLASS_NAMES
    assert tolerance_for(cfg.verification, cfg.scenarios()[1], "mask").max_mismatch_share > 0


def test_the_shipped_config_is_in_the_default_suite():
    ini = (ROOT / "pytest.ini").read_text()
    assert "projects/SemanticSegmentation/configs/deploy_config.py" in ini


def test_the_shipped_checkpoint_is_small():
    assert (PROJECT / "checkpoint.pth").stat().st_size < 1_000_000


def test_the_generator_rewrites_the_shipped_data_byte_for_byte(tmp_path):
    from projects.SemanticSegmentation.generate import EVAL_COUNT, EVAL_SEED, write_split

    write_split(tmp_path, "val", EVAL_COUNT, EVAL_SEED)
    shipped = sorted(p.relative_to(PROJECT / "data") for p in (PROJECT / "data").rglob("*.png"))
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.png"))
    assert shipped == written and len(shipped) == 2 * EVAL_COUNT
    for rel in shipped:
        assert (tmp_path / rel).read_bytes() == (PROJECT / "data" / rel).read_bytes(), rel


def test_the_shipped_labels_hold_every_class_and_ignored_pixels():
    ds = SegDataset(PROJECT / "data")
    values = np.unique(np.concatenate([read_label(s.seg_map_path).ravel() for s in ds]))
    assert values.tolist() == [*range(len(CLASS_NAMES)), 255]
    assert [s.stem for s in ds] == sorted(s.stem for s in ds)


def _dataset_copy(tmp_path: Path, drop_label: bool = False) -> Path:
    import shutil

    shutil.copytree(PROJECT / "data", tmp_path / "data")
    if drop_label:
        (tmp_path / "data" / "ann_dir" / "val" / "val_000003.png").unlink()
    return tmp_path / "data"


def test_an_image_without_a_label_map_is_a_config_error_naming_it(tmp_path):
    data = _dataset_copy(tmp_path, drop_label=True)
    with pytest.raises(DataError, match="val_000003.png"):
        SegDataset(data)
    with pytest.raises(ConfigError) as info:
        load_deploy_config(CONFIG, base_dir=ROOT, overrides=[f"runtime_io.data_root={str(data)!r}"])
    assert info.value.key == "runtime_io.data_root" and "val_000003.png" in info.value.allowed


def test_an_unreadable_label_map_is_a_data_error_naming_it(tmp_path):
    data = _dataset_copy(tmp_path)
    bad = data / "ann_dir" / "val" / "val_000001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match="val_000001.png"):
        read_label(bad)


def test_an_input_shape_the_unet_cannot_halve_is_refused():
    with pytest.raises(ConfigError) as info:
        load_deploy_config(CONFIG, base_dir=ROOT, overrides=["model_io.input_shape=(3, 62, 128)",
                                                            "model_io.output_shape=(6, 62, 128)"])
    assert info.value.key == "model_io.input_shape" and "multiples of 4" in info.value.allowed


def test_a_config_naming_another_task_type_is_refused(tmp_path):
    (tmp_path / "c.py").write_text(textwrap.dedent(f"""\
        _base_ = [{str(CONFIG)!r}]
        task_type = "classification"
    """))
    with pytest.raises(ConfigError) as info:
        load_deploy_config(tmp_path / "c.py", base_dir=ROOT)
    assert info.value.allowed == "'segmentation2d', the task type project SemanticSegmentation declares"


def test_the_pipeline_gives_logits_and_their_argmax_mask():
    import torch

    from awml_harness.project import NullTimer, load_project_class

    cfg = load_deploy_config(CONFIG, base_dir=ROOT)
    project = load_project_class(cfg.project_dir)(cfg)
    model = project.build_model()
    prepared = project.preprocess(project.dataset()[0])

    def run_graph(name, feeds):
        with torch.no_grad():
            return {"logits": model(torch.from_numpy(feeds["input"])).numpy()}

    out = project.forward(prepared, run_graph, NullTimer())
    assert out["logits"].shape == (1, 6, 64, 128) and out["mask"].shape == (1, 64, 128)
    assert np.array_equal(out["mask"], out["logits"].argmax(1))
    pred = project.postprocess(out, prepared)
    label = project.target(project.dataset()[0])
    keep = label != 255
    assert pred.dtype == np.uint8 and (pred[keep] == label[keep]).mean() > 0.8  # the trained checkpoint


@pytest.mark.parametrize("size", [(8, 8), (36, 52), (64, 128), (96, 40)])
def test_the_pipeline_takes_any_size_the_unet_can_halve(tmp_path, size):
    """Fully convolutional: images of another size than the shipped ones give a mask of
    their own size with class indices only (the PyTorch graph, any content)."""
    import torch
    from PIL import Image

    from awml_harness.project import NullTimer, load_project_class
    from projects.SemanticSegmentation.data import SegSample

    cfg = load_deploy_config(CONFIG, base_dir=ROOT)
    project = load_project_class(cfg.project_dir)(cfg)
    model = project.build_model()
    rng = np.random.default_rng(sum(size))
    img = tmp_path / "x.png"
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(img)
    prepared = project.preprocess(SegSample("x", img, img))

    def run_graph(name, feeds):
        with torch.no_grad():
            return {"logits": model(torch.from_numpy(feeds["input"])).numpy()}

    pred = project.postprocess(project.forward(prepared, run_graph, NullTimer()), prepared)
    assert pred.shape == size and pred.dtype == np.uint8 and pred.max() < len(CLASS_NAMES)


def test_an_image_the_unet_cannot_halve_is_a_data_error_naming_it(tmp_path):
    from PIL import Image

    from awml_harness.project import load_project_class
    from projects.SemanticSegmentation.data import SegSample

    cfg = load_deploy_config(CONFIG, base_dir=ROOT)
    project = load_project_class(cfg.project_dir)(cfg)
    img = tmp_path / "odd.png"
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(img)
    with pytest.raises(DataError, match=r"odd.png: image is 30x50.*multiples of 4"):
        project.preprocess(SegSample("odd", img, img))
