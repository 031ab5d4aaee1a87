"""The Autoware package each shipped project writes (the parameter files its ROS node
reads, beside the ONNX files) and test_package's comparison of a package with the model
config and the exported ONNX.

Packages here are written by the harness or edited from one in tmp_path; nothing is a
copied upstream file. test_written_packages_validate_against_autowares_schema_files (below)
validates against Autoware's own schema files when AWML_AUTOWARE_SCHEMAS names their folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from awml_harness.autoware import (
    PackageError,
    PackageValue,
    dump_params,
    find_file,
    judge,
    read_params,
    read_value,
    schema_errors,
)
from awml_harness.backends.base import BackendUnavailable

jsonschema = pytest.importorskip("jsonschema")

REPO = Path(__file__).resolve().parents[2]
CP = REPO / "projects" / "CenterPoint" / "configs" / "deploy_config.py"
YOLOX = REPO / "projects" / "YOLOX_opt_elan" / "configs" / "deploy_config.py"
CAL = REPO / "projects" / "CalibrationStatusClassification" / "configs" / "deploy_config.py"
#: the small shipped CenterPoint made deployable: 32 points per pillar, Autoware's head layout
CP_DEPLOYABLE = ["package.enabled=True", "model_cfg.max_points_per_voxel=32", "backend_config.model_inputs=[]",
                 "model_cfg.rot_y_axis_reference=True"]


def context(path: Path, tmp_path: Path, overrides: list[str] = ()):  # type: ignore[assignment]
    from awml_harness.config.load import load_deploy_config
    from awml_harness.context.data import RunOptions
    from awml_harness.session import ProjectContext

    cfg = load_deploy_config(path, base_dir=REPO, work_dir=str(tmp_path / "wd"), overrides=list(overrides))
    return ProjectContext(cfg, RunOptions())


def schema_of(ctx, file: str) -> Path:
    import inspect

    return Path(inspect.getfile(type(ctx.adapter))).parent / ctx.adapter.autoware_schemas[file]


@pytest.fixture(scope="module")
def cp_package(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cp")
    ctx = context(CP, tmp, CP_DEPLOYABLE)
    return ctx, ctx.package_artifact().folder


# -- what is written -------------------------------------------------------------------------------
def test_the_centerpoint_package_holds_what_the_node_reads(cp_package):
    ctx, folder = cp_package
    s = ctx.cfg.model_settings
    assert {"pts_voxel_encoder.onnx", "pts_backbone_neck_head.onnx", "ml_package.param.yaml",
            "detection_class_remapper.param.yaml", "deploy_metadata.yaml"} <= {p.name for p in folder.iterdir()}
    m = read_params(folder / "ml_package.param.yaml")
    assert m["version"] == "v4.1" and m["class_remapper_param_path"] == "detection_class_remapper.param.yaml"
    mp = m["model_params"]
    assert mp["class_names"] == ["CAR", "TRUCK", "BUS", "BICYCLE", "PEDESTRIAN"]
    assert (mp["point_feature_size"], mp["encoder_in_feature_size"], mp["downsample_factor"]) == (4, 10, 2)
    assert mp["max_voxel_size"] == s.voxel_profile[2] and mp["voxel_size"] == [0.4, 0.4, 6.0]
    assert all(isinstance(v, float) for v in mp["voxel_size"] + mp["point_cloud_range"])  # ROS reads doubles
    assert list(mp["detection_score_thresholds"]["min_confidence_scores"]) == mp["class_names"]
    remap = read_params(folder / "detection_class_remapper.param.yaml")
    labels = ("UNKNOWN", "CAR", "TRUCK", "BUS", "TRAILER", "MOTORCYCLE", "BICYCLE", "PEDESTRIAN")
    car_to_truck = labels.index("CAR") * 8 + labels.index("TRUCK")
    assert remap["allow_remapping_by_area_matrix"][car_to_truck] == 1 and remap["min_area_matrix"][car_to_truck] == 12.1
    meta = yaml.safe_load((folder / "deploy_metadata.yaml").read_text())
    assert meta["rot_y_axis_reference"] is True and set(meta["onnx"]) == {"pts_voxel_encoder.onnx",
                                                                          "pts_backbone_neck_head.onnx"}


@pytest.mark.parametrize("config, overrides", [(CP, CP_DEPLOYABLE), (YOLOX, []), (CAL, [])],
                         ids=["CenterPoint", "YOLOX", "calibration"])
def test_every_written_package_validates_against_its_schemas_and_agrees_with_the_model(config, overrides, tmp_path):
    from awml_harness.context.package import package_cases

    ctx = context(config, tmp_path, overrides)
    folder = ctx.package_artifact().folder
    for file in ctx.adapter.autoware_schemas:
        doc = yaml.safe_load((folder / file).read_text())
        assert schema_errors(doc, schema_of(ctx, file)) == [], file
    verdicts = [ctx.check_package(file, key) for file, key in package_cases(ctx.adapter)]
    assert len(verdicts) >= 5 and all(v.passed for v in verdicts), [v.message for v in verdicts if not v.passed]


def test_the_schemas_refuse_what_the_node_refuses(cp_package):
    ctx, folder = cp_package
    doc = yaml.safe_load((folder / "ml_package.param.yaml").read_text())
    params = doc["/**"]["ros__parameters"]["model_params"]
    params["encoder_in_feature_size"] = 12
    del params["max_voxel_size"]
    errors = schema_errors(doc, schema_of(ctx, "ml_package.param.yaml"))
    assert any("encoder_in_feature_size" in e for e in errors) and any("max_voxel_size" in e for e in errors)


def test_package_params_write_the_nodes_choices(tmp_path):
    ctx = context(CP, tmp_path, [*CP_DEPLOYABLE, "package.params={'ml_package.param.yaml': {'trt_precision': 'fp32', "
                                                 "'model_params.has_twist': False}}"])
    m = read_params(ctx.package_artifact().folder / "ml_package.param.yaml")
    assert (m["trt_precision"], m["model_params"]["has_twist"]) == ("fp32", False)
    assert m["model_params"]["voxel_size"] == [0.4, 0.4, 6.0]  # the rest as derived


def test_a_model_the_node_cannot_run_gets_no_package_and_says_why(tmp_path):
    ctx = context(CP, tmp_path, ["package.enabled=True"])  # 20 points per pillar, the harness's head layout
    with pytest.raises(BackendUnavailable, match=r"rot_y_axis_reference = False"):
        ctx.package_artifact()
    ctx = context(CP, tmp_path, ["package.enabled=True", "model_cfg.rot_y_axis_reference=True"])
    with pytest.raises(BackendUnavailable, match=r"max_points_per_voxel = 20: Autoware's voxelizer fills 32"):
        ctx.package_artifact()


# -- checking a package ------------------------------------------------------------------------------
def _edited(src: Path, dst: Path, file: str, key: str, value) -> Path:
    shutil.copytree(src, dst)
    (dst / "manifest.json").unlink()
    params = read_params(dst / file)
    node = params
    *path, last = key.split(".")
    for part in path:
        node = node[part]
    node[last] = value
    (dst / file).write_text(dump_params(params))
    return dst


def test_a_package_whose_voxel_size_differs_fails_naming_both_values(cp_package, tmp_path):
    _, folder = cp_package
    user = _edited(folder, tmp_path / "pkg", "ml_package.param.yaml", "model_params.voxel_size", [0.32, 0.32, 6.0])
    ctx = context(CP, tmp_path, [*CP_DEPLOYABLE, f"package.check_dir={str(user)!r}"])
    bad = ctx.check_package("ml_package.param.yaml", "model_params.voxel_size")
    assert not bad.passed and "[0.32, 0.32, 6.0]" in bad.message and "model_cfg.voxel_size = [0.4, 0.4, 6.0]" in bad.message
    assert ctx.check_package("ml_package.param.yaml", "model_params.class_names").passed


@pytest.mark.parametrize("key, value, needle", [
    ("model_params.class_names", ["TRUCK", "CAR", "BUS", "BICYCLE", "PEDESTRIAN"], "model_cfg.class_names"),
    ("model_params.point_feature_size", 5, "the loaded point columns [0, 1, 2, 4]"),
    ("model_params.max_voxel_size", 40000, "TensorRT profile max"),
    ("model_params.encoder_in_feature_size", 9, "pts_voxel_encoder.onnx input_features[-1] = 10"),
    ("model_params.downsample_factor", 1, "spatial_features H 128 / heatmap H 64"),
    ("model_params.point_cloud_range", [-76.8, -76.8, -4.0, 76.8, 76.8, 6.0], "model_cfg.point_cloud_range"),
    ("model_params.yaw_norm_thresholds", [0.3, 0.3], "len(model_params.yaw_norm_thresholds) = 2"),
])
def test_each_value_the_node_reads_is_compared(cp_package, tmp_path, key, value, needle):
    _, folder = cp_package
    user = _edited(folder, tmp_path / "pkg", "ml_package.param.yaml", key, value)
    ctx = context(CP, tmp_path, [*CP_DEPLOYABLE, f"package.check_dir={str(user)!r}"])
    verdict = ctx.check_package("ml_package.param.yaml", key)
    assert not verdict.passed and needle in verdict.message, verdict.message


def test_an_onnx_file_of_other_io_fails_its_io_check(cp_package, tmp_path):
    _, folder = cp_package
    user = tmp_path / "pkg"
    shutil.copytree(folder, user)
    shutil.copyfile(folder / "pts_voxel_encoder.onnx", user / "pts_backbone_neck_head.onnx")
    ctx = context(CP, tmp_path, [*CP_DEPLOYABLE, f"package.check_dir={str(user)!r}"])
    assert ctx.check_package("pts_voxel_encoder.onnx", "io").passed
    verdict = ctx.check_package("pts_backbone_neck_head.onnx", "io")
    assert not verdict.passed and "input_features" in verdict.message and "spatial_features" in verdict.message


def test_yolox_labels_out_of_order_and_a_wrong_input_size_fail(tmp_path):
    ctx = context(YOLOX, tmp_path)
    folder = ctx.package_artifact().folder
    user = tmp_path / "pkg"
    shutil.copytree(folder, user)
    lines = (user / "label.txt").read_text().splitlines()
    (user / "label.txt").write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    other = context(YOLOX, tmp_path / "other", ["model_cfg.input_size=(128, 128)", "model_io.input_shape=None",
                                               "model_io.output_shape=None", "backend_config.model_inputs=[]"])
    shutil.copyfile(other.package_artifact().folder / "yolox_opt_elan.onnx", user / "yolox_opt_elan.onnx")
    ctx = context(YOLOX, tmp_path, [f"package.check_dir={str(user)!r}"])
    labels = ctx.check_package("label.txt", "labels")
    assert not labels.passed and "'CAR', 'UNKNOWN'" in labels.message
    size = ctx.check_package("yolox_opt_elan.onnx", "inputs.images")
    assert not size.passed and "[-2:](inputs.images) = [128, 128] but model_cfg.input_size" in size.message


def test_calibration_profile_and_depth_are_compared(tmp_path):
    ctx = context(CAL, tmp_path)
    folder = ctx.package_artifact().folder
    user = _edited(folder, tmp_path / "pkg", "ml_package_calibration_status_classifier.param.yaml", "height",
                   [1080, 1860, 2160])
    ctx = context(CAL, tmp_path, [f"package.check_dir={str(user)!r}"])
    height = ctx.check_package("ml_package_calibration_status_classifier.param.yaml", "height")
    assert not height.passed and "[1080, 1860, 2160] but backend_config's TensorRT profile of input = [128, 128, 128]" \
        in height.message
    assert ctx.check_package("ml_package_calibration_status_classifier.param.yaml", "width").passed
    assert ctx.check_package("calibration_classifier.onnx", "inputs.input").passed


def test_a_missing_file_or_key_fails_naming_it(cp_package, tmp_path):
    _, folder = cp_package
    user = tmp_path / "pkg"
    shutil.copytree(folder, user)
    (user / "detection_class_remapper.param.yaml").unlink()
    params = read_params(user / "ml_package.param.yaml")
    del params["model_params"]["downsample_factor"]
    (user / "ml_package.param.yaml").write_text(dump_params(params))
    ctx = context(CP, tmp_path, [*CP_DEPLOYABLE, f"package.check_dir={str(user)!r}"])
    gone = ctx.check_package("detection_class_remapper.param.yaml", "schema")
    assert not gone.passed and "no such file" in gone.message
    key = ctx.check_package("ml_package.param.yaml", "model_params.downsample_factor")
    assert not key.passed and "has no such parameter" in key.message


# -- the helpers -------------------------------------------------------------------------------------
def test_release_file_names_are_found_by_their_prefix(tmp_path):
    (tmp_path / "centerpoint_ml_package.param.yaml").write_text("x: 1\n")
    (tmp_path / "pts_voxel_encoder_centerpoint.onnx").write_bytes(b"")
    assert find_file(tmp_path, "ml_package.param.yaml").name == "centerpoint_ml_package.param.yaml"
    assert find_file(tmp_path, "pts_voxel_encoder.onnx").name == "pts_voxel_encoder_centerpoint.onnx"
    (tmp_path / "other_ml_package.param.yaml").write_text("x: 1\n")
    assert find_file(tmp_path, "ml_package.param.yaml") is None  # two candidates: none is the one


def test_params_round_trip_with_floats_as_floats(tmp_path):
    text = dump_params({"a": {"v": [0.4, 0.4, 6.0], "n": 3, "tiny": 1e-05}, "flag": True}, header=["hi"])
    assert text.startswith("# hi\n/**:\n  ros__parameters:\n") and "[0.4, 0.4, 6.0]" in text
    (tmp_path / "p.yaml").write_text(text)
    params = read_params(tmp_path / "p.yaml")
    assert params == {"a": {"v": [0.4, 0.4, 6.0], "n": 3, "tiny": 1e-05}, "flag": True}
    assert isinstance(params["a"]["tiny"], float) and read_value(tmp_path / "p.yaml", "a.n") == 3
    with pytest.raises(PackageError, match="no such parameter"):
        read_value(tmp_path / "p.yaml", "a.missing")


def test_judge_compares_as_the_node_reads():
    ok = judge("f", "k", [0.24000001, 8.0], PackageValue([0.24, 8], "model_cfg.voxel_size"))
    assert ok.passed
    assert not judge("f", "k", [1, 2], PackageValue([2, 1], "src")).passed  # order matters
    assert not judge("f", "k", True, PackageValue(1, "src")).passed  # a flag is no number
    counted = judge("f", "k", [0.3] * 4, PackageValue(5, "one per class", len, "len"))
    assert not counted.passed and "len(k) = 4 but one per class = 5" in counted.message


def test_test_package_fails_a_users_package_naming_the_key_and_both_values(cp_package, tmp_path):
    """The suite as a user runs it: --awml-package DIR, test ids per file and key."""
    _, folder = cp_package
    user = _edited(folder, tmp_path / "pkg", "ml_package.param.yaml", "model_params.voxel_size", [0.32, 0.32, 6.0])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    out = subprocess.run([sys.executable, "-m", "pytest", "suites/test_package.py", "-q", "-p", "no:cacheprovider",
                          "--deploy-cfg", str(CP), "--work-dir", str(tmp_path / "wd"), "--awml-package", str(user),
                          "--cfg-options", *CP_DEPLOYABLE[:3], "--rot-y-axis-reference"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-2000:]
    assert "FAILED suites/test_package.py::test_package[CenterPoint-ml_package.param.yaml-model_params.voxel_size]" \
        in out.stdout
    assert "model_params.voxel_size = [0.32, 0.32, 6.0] but model_cfg.voxel_size = [0.4, 0.4, 6.0]" in out.stdout
    assert "1 failed" in out.stdout and "passed" in out.stdout


# -- Autoware's own schema files, when given ----------------------------------------------------------
# They are third-party files and not in this repository: point AWML_AUTOWARE_SCHEMAS at a
# folder holding them under their upstream names (autowarefoundation/autoware_universe
# `.../schema/<name>.schema.json`); each test skips, with the reason, when its file is not
# there. Autoware's older remapper schema carries `//` comments: read as JSON with line comments.

ENV = "AWML_AUTOWARE_SCHEMAS"
#: (config, overrides, package file, Autoware's schema file for it)
CASES = [
    (CP, CP_DEPLOYABLE, "ml_package.param.yaml", "ml_package.schema.json"),
    (CP, CP_DEPLOYABLE, "detection_class_remapper.param.yaml", "detection_class_remapper.schema.json"),
    (YOLOX, [], "ml_package_yolox.param.yaml", "ml_package_yolox.schema.json"),
    (CAL, [], "ml_package_calibration_status_classifier.param.yaml",
     "ml_package_calibration_status_classifier.schema.json"),
]


def read_json_with_comments(path: Path) -> dict:
    """JSON whose lines may end in `// ...` outside strings."""
    text = re.sub(r'("(?:\\.|[^"\\])*")|//[^\n]*', lambda m: m.group(1) or "", path.read_text())
    return json.loads(text)


def test_comments_are_stripped_outside_strings_only(tmp_path):
    (tmp_path / "s.json").write_text('{"a": "http://x//y", // note\n "b": [1, // one\n 2]}\n')
    assert read_json_with_comments(tmp_path / "s.json") == {"a": "http://x//y", "b": [1, 2]}


@pytest.mark.parametrize("config, overrides, file, schema", CASES, ids=[c[3] for c in CASES])
def test_written_packages_validate_against_autowares_schema_files(config, overrides, file, schema, tmp_path):
    folder = os.environ.get(ENV)
    if not folder:
        pytest.skip(f"{ENV} is not set: point it at a folder with autoware_universe's schema files ({schema})")
    path = Path(folder) / schema
    if not path.is_file():
        pytest.skip(f"{path} is not there")
    ctx = context(config, tmp_path, overrides)
    doc = yaml.safe_load((ctx.package_artifact().folder / file).read_text())
    validator = jsonschema.validators.validator_for(read_json_with_comments(path))(read_json_with_comments(path))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == [], errors
