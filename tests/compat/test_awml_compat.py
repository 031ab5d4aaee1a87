"""AWML's own files in, unchanged: model configs (custom_imports, `pkg::` bases), the
seed's deploy-config format and command line, and a user's `projects` package.

The configs under tests/compat/ have the structure of AWML's (T4 calibration model config,
the deployment branch's calibration and CenterPoint deploy configs), not their text.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from awml_harness.config.errors import ConfigError

HERE = Path(__file__).parent
REPO = HERE.parents[1]
CAL = HERE / "projects" / "CalibrationStatusClassification"
SEED_DEPLOY = CAL / "deploy" / "configs" / "deploy_config.py"
T4_MODEL = CAL / "configs" / "resnet18_5ch_t4like.py"
SHIPPED_CAL = REPO / "projects" / "CalibrationStatusClassification" / "configs" / "deploy_config.py"


def load(path: Path, **kw):
    from awml_harness.config.load import load_deploy_config

    kw.setdefault("base_dir", REPO)
    return load_deploy_config(path, **kw)


def run_python(code: str, *, env_path: list[Path], cwd: Path) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in env_path)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


# -- reading model configs runs nothing -------------------------------------------------------
def test_model_config_is_read_without_importing_its_custom_imports(tmp_path):
    """A custom_imports module that would leave a marker file is recorded, never imported;
    one that does not exist at all does not stop the read either."""
    marker_pkg = tmp_path / "awml_harness_test_marker.py"
    marker = tmp_path / "imported.txt"
    marker_pkg.write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        from awml_harness.config.openmmlab_read import custom_imports, read_model_config

        data = read_model_config(T4_MODEL)
    finally:
        sys.path.remove(str(tmp_path))
    assert not marker.exists()
    assert "awml_harness_test_marker" not in sys.modules
    assert custom_imports(data) == ["awml_harness_test_missing.datasets", "awml_harness_test_marker"]
    # `_base_.transform_config` and the mmpretrain-style base were merged
    assert data["test_pipeline"][0]["transform_config"]["crop_ratio"] == 0.5
    assert data["model"]["backbone"]["depth"] == 18 and data["model"]["head"]["num_classes"] == 2


def _fake_package(root: Path, name: str) -> Path:
    """An installed-looking package that ships configs the mim way (`<pkg>/.mim/configs`)."""
    pkg = root / name
    (pkg / ".mim" / "configs" / "_base_" / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('reading a config must not import the package')\n")
    (pkg / ".mim" / "model-index.yml").write_text("Import: []\n")
    (pkg / ".mim" / "configs" / "_base_" / "models" / "tiny.py").write_text(
        "model = dict(type='ImageClassifier', head=dict(type='LinearClsHead', num_classes=7))\n")
    return pkg


def test_package_bases_resolve_through_the_installed_package_without_importing_it(tmp_path, monkeypatch):
    from awml_harness.config.openmmlab_read import read_model_config

    # a package name mmengine knows (its pip name differs: mmsegmentation), shadowed here
    monkeypatch.delitem(sys.modules, "mmseg", raising=False)
    _fake_package(tmp_path, "mmseg")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = tmp_path / "model.py"
    cfg.write_text("_base_ = ['mmseg::_base_/models/tiny.py']\nmodel = dict(head=dict(in_channels=8))\n")
    data = read_model_config(cfg)
    assert data["model"]["head"] == {"type": "LinearClsHead", "num_classes": 7, "in_channels": 8}
    assert "mmseg" not in sys.modules


def test_a_missing_base_package_is_one_error_naming_what_to_install(tmp_path):
    from awml_harness.config.openmmlab_read import read_model_config

    cfg = tmp_path / "model.py"
    cfg.write_text("_base_ = ['awmlnosuchpkg::_base_/a.py', 'mmagic::_base_/b.py']\nmodel = dict()\n")
    with pytest.raises(ConfigError) as err:
        read_model_config(cfg)
    assert "pip install awmlnosuchpkg mmagic" in str(err.value)


def test_a_missing_relative_base_file_is_named(tmp_path):
    from awml_harness.config.openmmlab_read import read_model_config

    cfg = tmp_path / "model.py"
    cfg.write_text("_base_ = ['../nowhere/dataset.py']\nmodel = dict()\n")
    with pytest.raises(ConfigError) as err:
        read_model_config(cfg)
    assert "nowhere/dataset.py" in str(err.value) and "_base_" in str(err.value)


# -- projects: loaded by path, one lookup rule --------------------------------------------------
def test_a_users_projects_package_stays_importable_after_the_plugin_loaded(tmp_path):
    """An AWML checkout on PYTHONPATH (namespace `projects`, like AWML's) keeps
    `projects.CenterPoint.models` after the harness loaded its CenterPoint adapter."""
    models = tmp_path / "awml" / "projects" / "CenterPoint" / "models"
    models.mkdir(parents=True)
    (models / "__init__.py").write_text("USER_MODELS = True\n")
    code = f"""
        import sys
        from pathlib import Path
        from awml_harness.config.load import load_deploy_config
        cfg = load_deploy_config({str(REPO / 'projects/CenterPoint/configs/deploy_config.py')!r},
                                 base_dir=Path({str(REPO)!r}))
        from awml_harness.project import load_project_class
        cls = load_project_class(cfg.project_dir)
        assert cls.__module__.startswith('awml_harness._projects.'), cls.__module__
        assert not any(m == 'projects' or m.startswith('projects.') for m in sys.modules), sorted(sys.modules)
        import projects.CenterPoint.models as m
        assert m.USER_MODELS, m
        print('ok', cls.__module__)
    """
    # cwd outside the harness repo: a user's run, the harness installed (here: on the path)
    result = run_python(code, env_path=[REPO, tmp_path / "awml"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ok awml_harness._projects.CenterPoint.project" in result.stdout


def test_a_deploy_config_outside_the_tree_finds_the_project_of_the_config_it_inherits(tmp_path, monkeypatch):
    """Neither the config's folder nor the rootdir holds projects/: the rule walks up from
    the inherited (shipped) config as well."""
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "mine.py"
    mine.write_text(f"_base_ = [{str(SHIPPED_CAL)!r}]\nexport = dict(work_dir={str(tmp_path / 'wd')!r})\n"
                    f"checkpoint_path = {str(REPO / 'fixtures/calibration/checkpoint.pth')!r}\n"
                    f"runtime_io = dict(info_file={str(REPO / 'fixtures/calibration/data/calibration_infos_eval.pkl')!r},"
                    f" data_root={str(REPO / 'fixtures/calibration/data')!r})\n")
    cfg = load(mine, base_dir=tmp_path)
    assert Path(cfg.project_dir) == (REPO / "projects" / "CalibrationStatusClassification").resolve()


def test_project_search_roots_order(tmp_path):
    from awml_harness.project import project_search_roots

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "base.py").write_text("x = 1\n")
    child = tmp_path / "a" / "child.py"
    child.write_text("_base_ = ['../b/base.py']\n")
    assert project_search_roots(child, tmp_path / "root") == [tmp_path / "a", tmp_path / "b", tmp_path / "root"]


@pytest.mark.parametrize("ref", ["awml_no_such_module.sub:Project", "json:NoSuchClass", "json:JSONDecoder"])
def test_a_bad_module_class_project_is_a_config_error(ref, tmp_path):
    from awml_harness.project import load_project_class

    with pytest.raises(ConfigError) as err:
        load_project_class(ref)
    assert err.value.key == "project"


# -- the seed's deploy-config format ------------------------------------------------------------
def test_the_seed_deploy_config_loads_with_project_inferred_and_ignored_keys_reported():
    from awml_harness.config.seed import IgnoredConfigKey

    with pytest.warns(IgnoredConfigKey) as notes:
        cfg = load(SEED_DEPLOY, model_cfg=str(T4_MODEL))
    text = "\n".join(str(n.message) for n in notes)
    assert "codebase_config" in text and "evaluation.backends.onnx.model_dir" in text
    assert cfg.project == "CalibrationStatusClassification"
    # device aliases: the TensorRT scenario's "cuda" is devices["cuda"]
    trt = cfg.verification.scenarios["both"][1]
    assert (trt.ref_device, trt.test_device) == ("cuda:0", "cuda:0")
    assert cfg.model_settings.openmmlab_config == str(T4_MODEL.resolve())


def test_model_dir_is_the_onnx_to_run_when_nothing_is_exported(tmp_path):
    onnx = tmp_path / "end2end.onnx"
    onnx.write_bytes(b"x")
    cfg = load(SEED_DEPLOY, model_cfg=str(T4_MODEL), overrides=[
        "export.mode='none'", f"evaluation.backends.onnx.model_dir={str(onnx)!r}"])
    assert cfg.export.onnx_path == onnx


def test_typed_exporter_keys_of_the_seed_document_map_onto_the_schema(tmp_path):
    cfg = tmp_path / "deploy.py"
    cfg.write_text(f"_base_ = [{str(SHIPPED_CAL)!r}]\n"
                   "onnx_config = dict(input_names=('input',), output_names=('output',), batch_size=1)\n"
                   "backend_config = dict(_delete_=True)\n"
                   "trt_config = dict(precision_policy='fp16', max_workspace_size=1 << 28)\n")
    loaded = load(cfg)
    assert [s.name for s in loaded.model_io.additional_inputs] == ["input"]
    assert loaded.model_io.additional_outputs == ("output",) and loaded.model_io.batch_size == 1
    common = loaded.backend_config.common_config
    assert (common.precision_policy, common.max_workspace_size) == ("fp16", 1 << 28)
    with pytest.raises(ConfigError) as err:
        load(cfg, overrides=["model_io.batch_size=2"])
    assert err.value.key == "onnx_config.batch_size"
    with pytest.raises(ConfigError) as err:  # both sections set one key differently
        load(cfg, overrides=["backend_config.common_config.precision_policy='auto'"])
    assert err.value.key == "trt_config.precision_policy"


def test_all_unknown_keys_of_a_config_are_named_in_one_error(tmp_path):
    cfg = tmp_path / "deploy.py"
    cfg.write_text(f"_base_ = [{str(SHIPPED_CAL)!r}]\nexport = dict(wrok_dir='x')\n"
                   "evaluation = dict(backends=dict(onnx=dict(devise='cpu')))\nverifcation = dict()\n")
    with pytest.raises(ConfigError) as err:
        load(cfg)
    message = str(err.value)
    for key in ("export.wrok_dir", "evaluation.backends.onnx.devise", "verifcation"):
        assert key in message


@pytest.mark.parametrize("override, key", [
    ("onnx_config.export_params=False", "onnx_config.export_params"),
    ("onnx_config.keep_initializers_as_inputs=True", "onnx_config.keep_initializers_as_inputs"),
    ("onnx_config.type='openvino'", "onnx_config.type"),
    ("backend_config.type='ncnn'", "backend_config.type"),
])
def test_seed_keys_the_harness_cannot_honour_are_refused(override, key):
    with pytest.raises(ConfigError) as err:
        load(SEED_DEPLOY, model_cfg=str(T4_MODEL), overrides=[override])
    assert err.value.key == key


def test_project_is_inferred_from_codebase_config_outside_a_projects_folder(tmp_path):
    """A copy of the seed config elsewhere, model config given inline: no path names the
    project, codebase_config.type + task_type pick the one adapter declaring them."""
    cfg = tmp_path / "deploy.py"
    cfg.write_text(SEED_DEPLOY.read_text())
    model = tmp_path / "model.py"
    model.write_text(f"_base_ = [{str(T4_MODEL)!r}]\n")
    with pytest.warns(UserWarning):
        loaded = load(cfg, model_cfg=str(model))
    assert loaded.project == "CalibrationStatusClassification"
    with pytest.raises(ConfigError) as err:
        load(cfg, model_cfg=str(model), overrides=["codebase_config.type='mmocr'"])
    assert err.value.key == "project" and "mmocr" in str(err.value)


def test_project_cannot_be_inferred_outside_a_projects_folder(tmp_path):
    cfg = tmp_path / "deploy.py"
    cfg.write_text("task_type = 'classification'\n")
    with pytest.raises(ConfigError) as err:
        load(cfg)
    assert err.value.key == "project"


# -- derived settings -----------------------------------------------------------------------------
def test_calibration_transform_arguments_are_derived():
    s = load(SEED_DEPLOY, model_cfg=str(T4_MODEL)).model_settings
    assert (s.depth_scale, s.drop_beyond_depth, s.point_radius, s.miscalibration_probability) == (96.0, True, 1, 0.5)


@pytest.mark.parametrize("p, count", [(0, 1), (1, 1), (0.5, 2)])
def test_miscalibration_probability_picks_the_evaluated_states(p, count):
    cfg = load(SEED_DEPLOY, model_cfg=str(T4_MODEL))
    import dataclasses

    from awml_harness.project import load_project_class
    settings = dataclasses.replace(cfg.model_settings, miscalibration_probability=float(p))
    adapter = load_project_class(cfg.project_dir)(dataclasses.replace(cfg, model_settings=settings))
    data = adapter.dataset()
    labels = {sample.label for sample in data}
    assert len(data) == count * len(data.records) and len(labels) == count
    if p in (0, 1):
        assert labels == {int(1 - p)}  # label 1 = calibrated


def test_a_random_miscalibration_probability_is_refused(tmp_path):
    model = tmp_path / "model.py"
    model.write_text(f"_base_ = [{str(T4_MODEL)!r}]\nmiscalibration_probability = 0.3\n"
                     "test_pipeline = [dict(type='CalibrationClassificationTransform', mode='test', max_depth=96.0,"
                     " miscalibration_probability=0.3, enable_augmentation=False),"
                     " dict(type='PackInputs', input_key='fused_img')]\n")
    with pytest.raises(ConfigError) as err:
        load(SEED_DEPLOY, model_cfg=str(model))
    assert "miscalibration_probability" in err.value.key


def test_points_beyond_max_depth_are_left_out_not_saturated():
    import numpy as np

    from awml_harness.project import load_project_class

    cls = load_project_class("CalibrationStatusClassification", [REPO])
    data = sys.modules[cls.__module__.rpartition(".")[0] + ".data"]
    points = np.array([[0.0, 0.0, 50.0], [100.0, 0.0, 200.0]])  # camera frame = LiDAR frame below
    cam2img = np.array([[10.0, 0, 8], [0, 10.0, 8], [0, 0, 1]])
    kw = dict(height=16, width=16, depth_scale=100.0)
    sat, _ = data.project_lidar(points, np.ones(2), cam2img, np.eye(4), **kw)
    drop, _ = data.project_lidar(points, np.ones(2), cam2img, np.eye(4), drop_beyond=True, **kw)
    assert sat.max() == 255 and drop.max() == int(255 * 50 / 100)
    assert np.count_nonzero(sat) == 2 and np.count_nonzero(drop) == 1


def test_yolox_caps_detections_only_where_nms_max_num_says_so(tmp_path):
    base = REPO / "tests" / "openmmlab" / "configs" / "yolox" / "yolox_opt_elan_small.py"
    uncapped = tmp_path / "uncapped.py"
    uncapped.write_text(f"_base_ = [{str(base)!r}]\n"
                        "model = dict(test_cfg=dict(max_per_img=5, nms=dict(_delete_=True, type='nms',"
                        " iou_threshold=0.65)))\n")
    deploy = REPO / "tests" / "openmmlab" / "deploy_yolox.py"
    assert load(deploy, model_cfg=str(uncapped)).model_settings.max_detections is None
    assert load(deploy).model_settings.max_detections == 300  # nms.max_num=300 in the test config


# -- the seed's command line ----------------------------------------------------------------------
def test_seed_command_line_runs_export_and_verification(tmp_path):
    """`main.py deploy_cfg model_cfg checkpoint --work-dir --device --log-level` as
    pytest options, run from the harness checkout like a user would."""
    import os

    work = tmp_path / "wd"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", "-q",
         "--deploy-cfg", str(SEED_DEPLOY.relative_to(REPO)), "--model-cfg", str(T4_MODEL.relative_to(REPO)),
         "--checkpoint", "fixtures/calibration/checkpoint.pth", "--work-dir", str(work), "--device", "cpu",
         "--log-level", "INFO", "-k", "export or verification"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    # export onnx + the Autoware package, 2 verifications; TensorRT skips
    assert "4 passed, 3 skipped" in result.stdout, result.stdout[-3000:]
    assert "codebase_config" in result.stderr  # the ignored keys are reported
    doc = json.loads((work / "metrics.json").read_text())
    assert doc["projects"]["CalibrationStatusClassification"]["verification"]["passed"] == 2


def test_a_missing_checkpoint_on_the_command_line_is_a_usage_error(pytester, monkeypatch):
    monkeypatch.chdir(REPO)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--rootdir={REPO}", "-c", "/dev/null", "--collect-only",
        "--deploy-cfg", str(SEED_DEPLOY), "--model-cfg", str(T4_MODEL), "--checkpoint", "nowhere.pth")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*checkpoint_path*nowhere.pth*"])


def test_every_configs_mistakes_are_named_in_one_run(pytester, monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    bad = []
    for i, key in enumerate(("wrok_dir", "mdoe")):
        cfg = tmp_path / f"bad{i}.py"
        cfg.write_text(f"_base_ = [{str(SHIPPED_CAL)!r}]\nexport = dict({key}='x')\n")
        bad += ["--deploy-cfg", str(cfg)]
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--rootdir={REPO}", "-c", "/dev/null",
                                           "--collect-only", *bad)
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*bad0.py*export.wrok_dir*", "*bad1.py*export.mdoe*"])


def test_an_unimplemented_module_variant_is_one_named_refusal():
    """AWML's ShortRange/ConvNeXt variants: the refused `type` is named; that module's own
    keys are not listed as further problems, other modules' problems still are."""
    from awml_harness.openmmlab import ConfigReader

    r = ConfigReader({"model": {"backbone": {"type": "ConvNeXt_PC", "depths": [3, 3], "drop_path_rate": 0.4},
                                "head": {"type": "Head", "bogus": 1}}})
    r.check_keys("model.backbone", ("in_channels",))
    r.expect_type("model.backbone", ("SECOND",))
    r.check_keys("model.head", ("num_classes",))
    r.expect_type("model.head", ("Head",))
    with pytest.raises(ConfigError) as err:
        r.raise_if_any()
    message = str(err.value)
    assert "ConvNeXt_PC" in message and "model.head.bogus" in message
    assert "depths" not in message and "drop_path_rate" not in message


# -- the seed's model_io names the PyTorch model, not the graphs (CenterPoint) ------------------
SEED_CP_DEPLOY = HERE / "projects" / "CenterPoint" / "deploy" / "configs" / "deploy_config.py"
SMALL_CP_MODEL = REPO / "tests" / "openmmlab" / "configs" / "centerpoint" / "pillar_040_small.py"


def run_suites(work: Path, *args: str) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    return subprocess.run([sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", "-q",
                           "--work-dir", str(work), "--device", "cpu", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_the_seed_centerpoint_model_io_maps_onto_the_graphs():
    """voxels / num_points / coors are the voxelizer's tensors (ignored, each with the
    reason); `hm` is checked as the graph output `heatmap`; the rest stays as written."""
    from awml_harness.config.seed import IgnoredConfigKey

    with pytest.warns(IgnoredConfigKey) as notes:
        cfg = load(SEED_CP_DEPLOY, model_cfg=str(SMALL_CP_MODEL))
    io = cfg.model_io
    assert (io.input_name, io.input_shape, io.additional_inputs) == (None, None, ())
    assert io.output_name == "reg" and io.additional_outputs == ("height", "dim", "rot", "vel", "heatmap")
    assert dict(io.dynamic_axes) == {}
    text = "\n".join(str(n.message) for n in notes)
    for key in ("model_io.input_name='voxels' is ignored", "model_io.additional_inputs[0].name='num_points' is ignored",
                "model_io.additional_inputs[1].name='coors' is ignored", "model_io.dynamic_axes.voxels"):
        assert key in text
    assert "'hm' is checked as graph tensor 'heatmap'" in text
    assert "pipeline tensor, not a graph input/output" in text


def test_model_io_names_are_kept_where_a_project_declares_no_mapping():
    """The default (nothing declared) rewrites nothing, so every name stays checked; a
    declaring project only touches the names it declares."""
    from awml_harness.config.schema import IOSpec, ModelIO
    from awml_harness.config.seed import model_io_onto_graphs
    from awml_harness.project import ProjectAdapter

    io = ModelIO(input_name="voxels", input_shape=(20, 4), output_name="hm",
                 additional_inputs=(IOSpec("coors"), IOSpec("extra")), additional_outputs=("hm", "reg"),
                 dynamic_axes={"voxels": {0: "n"}, "hm": {0: "b"}})
    assert model_io_onto_graphs(io, ProjectAdapter) == (io, [])

    class Declaring:
        name = "Demo"
        model_io_aliases = {"hm": "heatmap"}
        model_io_pipeline_tensors = {"voxels": "made in numpy", "coors": "made in numpy"}

    mapped, notes = model_io_onto_graphs(io, Declaring)
    assert (mapped.input_name, mapped.input_shape, mapped.output_name) == (None, None, "heatmap")
    assert [s.name for s in mapped.additional_inputs] == ["extra"]
    assert mapped.additional_outputs == ("heatmap", "reg")
    assert dict(mapped.dynamic_axes) == {"heatmap": {0: "b"}}
    assert len(notes) == 6 and all("Demo" in n for n in notes)


def test_the_seed_centerpoint_deploy_config_exports_and_verifies(tmp_path):
    """`main.py deploy_cfg model_cfg` with the seed's CenterPoint deploy config: both
    graphs export, test_export checks the model_io names that are graph I/O, and PyTorch
    vs ONNX verification passes (TensorRT skips without a GPU)."""
    work = tmp_path / "wd"
    result = run_suites(work, "--deploy-cfg", str(SEED_CP_DEPLOY.relative_to(REPO)),
                        "--model-cfg", str(SMALL_CP_MODEL.relative_to(REPO)), "-k", "export or verification")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    # the Autoware package skips too: the seed model has the harness's head layout, not Autoware's
    assert "4 passed, 5 skipped" in result.stdout, result.stdout[-3000:]
    assert "no Autoware package for CenterPoint: model_cfg.rot_y_axis_reference = False" in result.stdout
    assert "'hm' is checked as graph tensor 'heatmap'" in result.stderr
    doc = json.loads((work / "metrics.json").read_text())
    assert doc["projects"]["CenterPoint"]["verification"]["passed"] == 2


def test_a_wrong_model_io_name_still_fails_test_export_by_name(tmp_path):
    result = run_suites(tmp_path / "wd", "--deploy-cfg", str(SEED_CP_DEPLOY.relative_to(REPO)),
                        "--model-cfg", str(SMALL_CP_MODEL.relative_to(REPO)), "-k", "test_export and onnx",
                        "--cfg-options", "model_io.input_name='voxelz'", "model_io.additional_outputs=['hmm']")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    assert "model_io.input_name='voxelz' is not an input of pts_voxel_encoder.onnx: ['input_features']" in result.stdout
    assert "model_io.additional_outputs ['hmm'] are outputs of no exported graph" in result.stdout


def test_a_pkg_base_of_a_missing_package_names_what_to_install(tmp_path: Path):
    """`pkg::` bases are looked up without importing the package; every missing one is
    named in one error with the pip command, before mmengine reads anything."""
    from awml_harness.config.openmmlab_read import external_bases, read_model_config

    cfg = tmp_path / "model.py"
    cfg.write_text("_base_ = ['awmlnopkga::configs/a.py', './local.py', 'awmlnopkgb::b.py']\nmodel = dict()\n")
    assert external_bases(cfg) == [("awmlnopkga", "configs/a.py"), ("awmlnopkgb", "b.py")]
    with pytest.raises(ConfigError, match=r"pip install awmlnopkga awmlnopkgb") as info:
        read_model_config(cfg)
    assert info.value.key == "model_cfg"


# -- model_cfg overrides on top of a model config file (issue 24 item 4) ---------------------
def test_model_cfg_overrides_apply_on_top_of_a_model_config_file():
    plain = load(SEED_CP_DEPLOY, model_cfg=str(SMALL_CP_MODEL))
    assert plain.model_settings.rot_y_axis_reference is False
    cfg = load(SEED_CP_DEPLOY, model_cfg=str(SMALL_CP_MODEL), overrides=["model_cfg.rot_y_axis_reference=True",
                                                                          "CenterPoint:model_cfg.score_threshold=0.3"])
    assert cfg.model_settings.rot_y_axis_reference is True
    assert cfg.model_settings.score_threshold == 0.3
    # the seed's format names no project: a scope naming the project it is inferred to be still applies
    scoped = load(SEED_CP_DEPLOY, model_cfg=str(SMALL_CP_MODEL), overrides=["CenterPoint:verification.num_verify_samples=1"])
    assert scoped.verification.num_verify_samples == 1
    # everything else is what the file says
    assert cfg.model_settings.voxel_size == plain.model_settings.voxel_size
    # a wrong key or value is the usual config error under model_cfg
    with pytest.raises(ConfigError, match=r"model_cfg\.rot_y_axis_referenc"):
        load(SEED_CP_DEPLOY, model_cfg=str(SMALL_CP_MODEL), overrides=["model_cfg.rot_y_axis_referenc=True"])
    with pytest.raises(ConfigError, match=r"model_cfg\.score_threshold"):
        load(SEED_CP_DEPLOY, model_cfg=str(SMALL_CP_MODEL), overrides=["model_cfg.score_threshold='high'"])


def test_a_model_cfg_path_in_the_deploy_config_takes_overrides_too(tmp_path):
    deploy = tmp_path / "deploy.py"
    deploy.write_text(f"_base_ = [{str(SEED_CP_DEPLOY)!r}]\nproject = 'CenterPoint'\n"
                      f"model_cfg = {str(SMALL_CP_MODEL)!r}\n")
    cfg = load(deploy, overrides=["model_cfg.rot_y_axis_reference=True"])
    assert cfg.model_settings.rot_y_axis_reference is True


_PRINT_SETTING = """
from awml_harness.stash_keys import SESSION_KEY

def pytest_collection_finish(session):
    harness = session.config.stash[SESSION_KEY]
    for cid, cfg in harness.configs.items():
        print("SETTING", cid, cfg.model_settings.rot_y_axis_reference)
"""


@pytest.mark.parametrize("order", ["model-cfg first", "cfg-options first"])
def test_model_cfg_overrides_survive_model_cfg_on_the_command_line_in_either_order(tmp_path, order):
    import os

    (tmp_path / "conftest.py").write_text(_PRINT_SETTING)
    model = ["--model-cfg", str(SMALL_CP_MODEL)]
    override = ["--cfg-options", "model_cfg.rot_y_axis_reference=True"]
    args = [*model, *override] if order == "model-cfg first" else [*override, *model]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    out = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path), "--co", "-q", "-p", "no:cacheprovider",
                          "--rootdir", str(REPO), "--deploy-cfg", str(SEED_CP_DEPLOY), *args],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert "SETTING CenterPoint True" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
