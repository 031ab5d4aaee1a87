"""AWML's new deployment framework (tier4/AWML PR 115): its deploy configs in every shape,
its CLI habits, and the model config's own metric.

The configs here are written fresh in the shapes of the framework's files (the newest
`components` form of f2e5a945, the PR 161 lineage with `name=` and `task_type`, the
PR 141 `backend_config` + `model_io` form), around the small pillar model the shipped
checkpoint fits. tests/compat/test_awml_upstream.py runs the real files when given.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from awml_harness.config.errors import ConfigError, IgnoredConfigKey

HERE = Path(__file__).parent
REPO = HERE.parents[1]
SMALL_MODEL = REPO / "tests" / "openmmlab" / "configs" / "centerpoint" / "pillar_040_small.py"
DATA = REPO / "fixtures" / "centerpoint"

T4METRIC_V2 = """
val_evaluator = dict(
    _delete_=True, type="T4MetricV2", data_root=data_root, ann_file=data_root + "info/x_val.pkl",
    output_dir="validation", dataset_name="small", num_workers=4, scene_batch_size=-1,
    write_metric_summary=False, class_names=class_names, name_mapping=dict(car="car"),
    perception_evaluator_configs=dict(
        dataset_paths=data_root, frame_id="base_link", load_raw_data=False,
        evaluation_config_dict=dict(
            evaluation_task="detection", target_labels=class_names,
            center_distance_bev_thresholds=[0.25, 1.5], plane_distance_thresholds=[2.0, 4.0],
            iou_2d_thresholds=None, iou_3d_thresholds=None, label_prefix="autoware",
            min_distance=[0.0, 10.0, 0.0], max_distance=[10.0, 30.0, 30.0],
            min_point_numbers=0, matching_class_agnostic_fps=False)),
    critical_object_filter_config=None,
    frame_pass_fail_config=dict(target_labels=class_names, matching_threshold_list=[2.0] * 5,
                                confidence_threshold_list=None),
)
"""


def model_config(tmp_path: Path, evaluator: str = T4METRIC_V2, name: str = "model.py") -> Path:
    """The small pillar model as an AWML T4 config: a test dataset whose data_root holds
    the shipped infos and clouds, and an evaluator."""
    path = tmp_path / name
    path.write_text(f"_base_ = [{str(SMALL_MODEL)!r}]\n"
                    "class_names = ['car', 'truck', 'bus', 'bicycle', 'pedestrian']\n"
                    f"data_root = {str(DATA) + '/'!r}\n"
                    "test_dataloader = dict(dataset=dict(data_root=data_root))\n" + textwrap.dedent(evaluator))
    return path


_COMPONENTS = """
components = dict(
    {enc}=dict(
        {enc_name}onnx_file="pts_voxel_encoder.onnx", engine_file="pts_voxel_encoder.engine",
        io=dict(inputs=[dict(name="input_features", dtype="float32")],
                outputs=[dict(name="pillar_features", dtype="float32")],
                dynamic_axes={{"input_features": {{0: "num_voxels", 1: "num_max_points"}},
                              "pillar_features": {{0: "num_voxels"}}}}),
        tensorrt_profile=dict(input_features=dict(min_shape=[50, 20, 10], opt_shape=[2000, 20, 10],
                                                  max_shape=[12000, 20, 10])),
    ),
    {head}=dict(
        {head_name}onnx_file="pts_backbone_neck_head.onnx", engine_file="pts_backbone_neck_head.engine",
        io=dict(inputs=[dict(name="spatial_features", dtype="float32")],
                outputs=[dict(name=n, dtype="float32") for n in ("heatmap", "reg", "height", "dim", "rot", "vel")],
                dynamic_axes={{"spatial_features": {{0: "batch_size", 2: "height", 3: "width"}}}}),
        tensorrt_profile=dict(spatial_features=dict(min_shape=[1, 32, 128, 128], opt_shape=[1, 32, 128, 128],
                                                    max_shape=[1, 32, 128, 128])),
    ),
)
"""

NEWEST = """
checkpoint_path = {checkpoint!r}
deploy_log_path = "deployment.log"
devices = dict(cpu="cpu", cuda="cuda:0")
_WORK = {work!r}
export = dict(work_dir=_WORK, onnx_path=_WORK + "/onnx")
"""
NEWEST_TAIL = _COMPONENTS.format(enc="pts_voxel_encoder", head="pts_backbone_neck_head", enc_name="",
                                 head_name="") + """
runtime_io = dict(info_file="infos_eval.pkl", sample_idx=1)
onnx_config = dict(opset_version=17, do_constant_folding=True, export_params=True,
                   keep_initializers_as_inputs=False, simplify=False)
tensorrt_config = dict(precision_policy="auto", max_workspace_size=2 << 30)
evaluation = dict(
    num_samples=2, verbose=True,
    backends=dict(pytorch=dict(enabled=True, device=devices["cpu"]),
                  ONNX=dict(device=devices["cpu"], model_dir=_WORK + "/onnx"),
                  tensorrt=dict(enabled=True, device="cpu", engine_dir=_WORK + "/tensorrt")),
    models=dict(onnx=_WORK + "/onnx"), devices=dict(a="cpu"),
)
verification = dict(
    enabled=True, num_verify_samples=1, devices=devices,
    scenarios=dict(both=[dict(ref_backend="pytorch", ref_device="cpu", test_backend="onnx", test_device="cpu")],
                   onnx=[dict(ref_backend="pytorch", ref_device="cpu", test_backend="onnx", test_device="cpu")],
                   trt=[], none=[]),
)
"""


def newest(tmp_path: Path, extra: str = "", folder: str = "deployment/projects/centerpoint/config") -> Path:
    """A deploy config of f2e5a945's shape where upstream keeps it (the project is named by
    its folder, `centerpoint`, as the framework's CLI writes it)."""
    where = tmp_path / folder
    where.mkdir(parents=True, exist_ok=True)
    path = where / "deploy_config.py"
    path.write_text(NEWEST.format(checkpoint=str(DATA / "checkpoint.pth"), work=str(tmp_path / "wd")) + NEWEST_TAIL
                    + extra)
    return path


def load(path: Path, **kw):
    from awml_harness.config.load import load_deploy_config

    kw.setdefault("base_dir", REPO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = load_deploy_config(path, **kw)
    return cfg, "\n".join(str(w.message) for w in caught if issubclass(w.category, IgnoredConfigKey))


# -- the newest shape -----------------------------------------------------------------------------
def test_the_newest_deploy_config_loads_with_the_frameworks_defaults_and_notes(tmp_path):
    cfg, notes = load(newest(tmp_path), model_cfg=str(model_config(tmp_path)))
    assert (cfg.project, cfg.task_type) == ("CenterPoint", "detection3d")  # no task_type in the file
    assert cfg.export.mode == "both" and cfg.export.onnx_path is None  # upstream's default mode
    # info_file is joined with the model config's test dataset data_root, which holds the clouds
    assert cfg.runtime_io.info_file == DATA / "infos_eval.pkl" and cfg.runtime_io.data_root == DATA
    ev = cfg.evaluation
    assert ev.enabled is False and ev.num_samples == 2 and ev.latency is False  # evaluation off unless enabled
    assert {n: b.enabled for n, b in ev.backends.items()} == {"pytorch": True, "onnx": False, "tensorrt": True}
    assert ev.backends["tensorrt"].device == "cuda:0"  # TensorRT on "cpu" is switched to devices.cuda
    common = cfg.backend_config.common_config
    assert (common.precision_policy, common.max_workspace_size) == ("auto", 2 << 30)
    profiles = cfg.backend_config.model_inputs[0].input_shapes
    assert profiles["input_features"].max_shape == (12000, 20, 10)
    assert cfg.model_settings.num_voxels_profile == (50, 2000, 12000)  # the voxel axis from the profile
    assert [s.name for s in cfg.model_io.additional_inputs] == ["input_features", "spatial_features"]
    assert cfg.model_io.additional_outputs == ("pillar_features", "heatmap", "reg", "height", "dim", "rot", "vel")
    assert cfg.verification.tolerance == 0.1  # upstream's default, an absolute bound
    for key in ("deploy_log_path='deployment.log' is ignored", "export.onnx_path=", "components.pts_voxel_encoder."
                "onnx_file/engine_file", "components.pts_backbone_neck_head.io.outputs[*].dtype", "evaluation.models=",
                "evaluation.devices=", "evaluation.backends.tensorrt.device='cpu' is read as 'cuda:0'",
                "evaluation.backends.onnx.model_dir", "evaluation.backends.tensorrt.engine_dir",
                "model_io.dynamic_axes="):
        assert key in notes, key


def test_an_evaluation_with_no_enabled_backend_is_off(tmp_path):
    cfg, notes = load(newest(tmp_path, "evaluation = dict(enabled=True, backends=dict(pytorch=dict(device='cpu')))\n"),
                      model_cfg=str(model_config(tmp_path)))
    assert cfg.evaluation.enabled is False and "no evaluation backend has enabled=True" in notes
    cfg, _ = load(newest(tmp_path, "evaluation = dict(enabled=True, backends=dict(onnx=dict(enabled=True)))\n"),
                  model_cfg=str(model_config(tmp_path)))
    assert cfg.evaluation.enabled and cfg.evaluation.reference == "onnx" and cfg.evaluation.latency


def test_an_export_mode_is_read_as_upstream_reads_it(tmp_path):
    cfg, _ = load(newest(tmp_path, "export = dict(mode=' ONNX ')\n"), model_cfg=str(model_config(tmp_path)))
    assert cfg.export.mode == "onnx"


def test_a_component_naming_no_graph_is_refused_by_its_key(tmp_path):
    cfg = newest(tmp_path, "components = dict(pts_head=dict(onnx_file='x.onnx', io=dict(), tensorrt_profile=dict()))\n")
    with pytest.raises(ConfigError) as err:
        load(cfg, model_cfg=str(model_config(tmp_path)))
    assert err.value.key == "components.pts_head" and "pts_backbone_neck_head" in err.value.allowed


def test_a_profile_other_than_the_models_still_fails_naming_it(tmp_path):
    wrong = "components = dict(pts_voxel_encoder=dict(tensorrt_profile=dict(input_features=dict(min_shape=[1, 32, 11], " \
            "opt_shape=[2, 32, 11], max_shape=[12000, 32, 11]))))\n"
    with pytest.raises(ConfigError) as err:
        load(newest(tmp_path, wrong), model_cfg=str(model_config(tmp_path)))
    assert "input_features" in err.value.key and "(1, 32, 11)" in str(err.value) and "min (1, 20, 10)" in str(err.value)


def test_a_voxel_profile_below_max_voxels_is_refused(tmp_path):
    small = "components = dict(pts_voxel_encoder=dict(tensorrt_profile=dict(input_features=dict(min_shape=[1, 20, 10], " \
            "opt_shape=[2, 20, 10], max_shape=[6000, 20, 10]))))\n"
    with pytest.raises(ConfigError) as err:
        load(newest(tmp_path, small), model_cfg=str(model_config(tmp_path)))
    assert err.value.key == "model_cfg.num_voxels_profile" and "max_voxels (12000)" in str(err.value)
    assert "TensorRT profile of pts_voxel_encoder.input_features" in str(err.value)


# -- the earlier shapes ---------------------------------------------------------------------------
PR161 = """
task_type = "detection3d"
checkpoint_path = {checkpoint!r}
export = dict(mode="onnx", work_dir={work!r}, onnx_path=None)
"""
PR161_TAIL = _COMPONENTS.format(enc="voxel_encoder", head="backbone_head", enc_name='name="pts_voxel_encoder", ',
                                head_name='name="pts_backbone_neck_head", ') + """
runtime_io = dict(info_file="infos_eval.pkl", sample_idx=1)
tensorrt_config = dict(precision_policy="fp16", max_workspace_size=1 << 30)
verification = dict(tolerance=1e-1, num_verify_samples=1,
                    scenarios=dict(onnx=[dict(ref_backend="pytorch", ref_device="cpu", test_backend="onnx",
                                              test_device="cpu")]))
"""

PR141 = """
task_type = "detection3d"
checkpoint_path = {checkpoint!r}
devices = dict(cpu="cpu", cuda="cuda:0")
export = dict(work_dir={work!r}, onnx_path=None)
runtime_io = dict(info_file={info!r}, sample_idx=1)
model_io = dict(input_name="voxels", input_shape=(20, 4), input_dtype="float32",
                additional_inputs=[dict(name="num_points", shape=(-1,), dtype="int32"),
                                   dict(name="coors", shape=(-1, 4), dtype="int32")],
                head_output_names=("heatmap", "reg", "height", "dim", "rot", "vel"), batch_size=None,
                dynamic_axes={{"voxels": {{0: "num_voxels"}}, "num_points": {{0: "num_voxels"}}, "coors": {{0: "num_voxels"}}}})
onnx_config = dict(opset_version=16, do_constant_folding=True, export_params=True, keep_initializers_as_inputs=False,
                   simplify=False, multi_file=True,
                   components=dict(voxel_encoder=dict(name="pts_voxel_encoder", onnx_file="pts_voxel_encoder.onnx",
                                                      engine_file="pts_voxel_encoder.engine"),
                                   backbone_head=dict(name="pts_backbone_neck_head",
                                                      onnx_file="pts_backbone_neck_head.onnx",
                                                      engine_file="pts_backbone_neck_head.engine")))
backend_config = dict(common_config=dict(precision_policy="auto", max_workspace_size=2 << 30),
                      model_inputs=[dict(input_shapes=dict(
                          input_features=dict(min_shape=[1, 20, 10], opt_shape=[4000, 20, 10], max_shape=[12000, 20, 10]),
                          spatial_features=dict(min_shape=[1, 32, 128, 128], opt_shape=[1, 32, 128, 128],
                                                max_shape=[1, 32, 128, 128])))])
evaluation = dict(enabled=True, num_samples=1, backends=dict(pytorch=dict(enabled=True, device=devices["cpu"]),
                                                             onnx=dict(enabled=True, device=devices["cpu"])))
verification = dict(enabled=True, tolerance=0.5, num_verify_samples=1, devices=devices,
                    scenarios=dict(both=[dict(ref_backend="pytorch", ref_device="cpu", test_backend="onnx",
                                              test_device="cpu")]))
"""


def upstream_folder(tmp_path: Path) -> Path:
    where = tmp_path / "deployment" / "projects" / "centerpoint" / "config"
    where.mkdir(parents=True, exist_ok=True)
    return where / "deploy_config.py"


def test_the_pr161_shape_with_named_components_and_task_type_loads(tmp_path):
    path = upstream_folder(tmp_path)
    path.write_text(PR161.format(checkpoint=str(DATA / "checkpoint.pth"), work=str(tmp_path / "wd")) + PR161_TAIL)
    cfg, notes = load(path, model_cfg=str(model_config(tmp_path)))
    assert cfg.backend_config.common_config.precision_policy == "fp16"
    assert cfg.model_settings.num_voxels_profile == (50, 2000, 12000)
    assert cfg.runtime_io.info_file == DATA / "infos_eval.pkl"
    assert "components.voxel_encoder.onnx_file/engine_file" in notes


def test_the_pr141_backend_config_shape_loads_with_the_frameworks_defaults(tmp_path):
    path = tmp_path / "projects" / "CenterPoint" / "deploy" / "deploy_config.py"
    path.parent.mkdir(parents=True)
    path.write_text(PR141.format(checkpoint=str(DATA / "checkpoint.pth"), work=str(tmp_path / "wd"),
                                 info="fixtures/centerpoint/infos_eval.pkl"))  # this shape: relative to the CWD
    cfg, notes = load(path, model_cfg=str(model_config(tmp_path)))
    assert cfg.export.mode == "both"  # absent: upstream's default
    assert cfg.runtime_io.info_file == DATA / "infos_eval.pkl"
    assert cfg.model_io.additional_outputs == ("heatmap", "reg", "height", "dim", "rot", "vel")
    assert "onnx_config.components.voxel_encoder=" in notes and "model_io.input_name='voxels' is ignored" in notes
    with pytest.raises(ConfigError) as err:  # a component naming no graph
        load(path, model_cfg=str(model_config(tmp_path)),
             overrides=["onnx_config.components.voxel_encoder.name='pts_encoder'"])
    assert err.value.key == "components.voxel_encoder.name"


# -- verification.tolerance: an absolute bound in every form -------------------------------------
@pytest.mark.parametrize("shape", ["newest", "pr161", "pr141", "seed"])
def test_the_single_tolerance_is_an_absolute_bound_in_every_form(tmp_path, shape):
    from awml_harness.config.schema import Backend, Scenario
    from awml_harness.verification.tolerance import resolve

    model = str(model_config(tmp_path))
    if shape == "newest":
        path, over, want = newest(tmp_path), ["verification.tolerance=0.25"], 0.25
    elif shape == "pr161":
        path, over, want = upstream_folder(tmp_path), [], 0.1
        path.write_text(PR161.format(checkpoint=str(DATA / "checkpoint.pth"), work=str(tmp_path / "wd")) + PR161_TAIL)
    elif shape == "pr141":
        path, over, want = upstream_folder(tmp_path), [], 0.5
        path.write_text(PR141.format(checkpoint=str(DATA / "checkpoint.pth"), work=str(tmp_path / "wd"),
                                     info=str(DATA / "infos_eval.pkl")))
    else:
        path, over, want = HERE / "projects" / "CenterPoint" / "deploy" / "configs" / "deploy_config.py", [], 1e-2
    cfg, _ = load(path, model_cfg=model, overrides=over)
    held = resolve(cfg.verification, Scenario(Backend.PYTORCH, Backend.ONNX), "heatmap")
    assert (held.tolerance.atol, held.tolerance.rtol) == (want, 0.0) and held.rule == "verification.tolerance"


# -- the project name as upstream writes it ---------------------------------------------------------
def test_the_lower_case_project_name_finds_the_project(tmp_path):
    cfg, _ = load(newest(tmp_path, "project = 'centerpoint'\n", folder="elsewhere"), model_cfg=str(model_config(tmp_path)))
    assert cfg.project == "CenterPoint" and cfg.id == "CenterPoint"
    with pytest.raises(ConfigError) as err:
        load(newest(tmp_path, "project = 'centerpoints'\n", folder="elsewhere"), model_cfg=str(model_config(tmp_path)))
    assert err.value.key == "project"


# -- the model config names its metric ------------------------------------------------------------
def test_t4metric_v2_picks_the_t4_metric_with_its_buckets_and_thresholds(tmp_path):
    cfg, notes = load(newest(tmp_path), model_cfg=str(model_config(tmp_path)))
    s = cfg.model_settings
    assert s.metric == "t4" and s.metric_matching == "center_distance_bev"
    assert s.metric_distance_ranges == ((0.0, 10.0), (10.0, 30.0), (0.0, 30.0))
    assert s.distance_thresholds == (0.25, 1.5)
    assert "plane_distance_thresholds=[2.0, 4.0] is ignored" in notes and "frame_pass_fail_config" in notes


def test_t4metric_is_the_nuscenes_metric_with_its_class_ranges(tmp_path):
    v1 = """
    val_evaluator = dict(type="T4Metric", data_root=data_root, ann_file="x.pkl", metric="bbox", class_names=class_names,
                         eval_class_range=dict(car=40, truck=40, bus=40, bicycle=30, pedestrian=30),
                         filter_attributes=[("vehicle.bicycle", "vehicle_state.parked")])
    """
    cfg, notes = load(newest(tmp_path), model_cfg=str(model_config(tmp_path, v1)))
    assert cfg.model_settings.metric == "nuscenes"
    assert cfg.model_settings.metric_class_range == {"car": 40.0, "truck": 40.0, "bus": 40.0, "bicycle": 30.0,
                                                     "pedestrian": 30.0}
    assert "filter_attributes" in notes


def test_an_evaluator_the_harness_does_not_implement_is_refused_by_name(tmp_path):
    other = "val_evaluator = dict(type='mmdet3d.LyftMetric', data_root=data_root)\n"
    model = model_config(tmp_path, other)
    with pytest.raises(ConfigError) as err:
        load(newest(tmp_path), model_cfg=str(model))
    assert err.value.key == "model_cfg:val_evaluator.type" and "T4MetricV2" in err.value.allowed
    # choosing the metric in the deploy config makes the evaluator moot
    cfg, _ = load(newest(tmp_path, f"model_cfg = dict(openmmlab={str(model)!r}, metric='t4')\n"))
    assert cfg.model_settings.metric == "t4"


def test_a_deploy_config_metric_wins_over_the_evaluator_and_is_reported(tmp_path):
    model = model_config(tmp_path)
    cfg, notes = load(newest(tmp_path, f"model_cfg = dict(openmmlab={str(model)!r}, metric='nuscenes')\n"))
    assert cfg.model_settings.metric == "nuscenes"
    assert "implies metric='t4', which is ignored: the deploy config sets model_cfg.metric='nuscenes'" in notes
    cfg, notes = load(newest(tmp_path), model_cfg=str(model), overrides=["model_cfg.metric='nuscenes'"])
    assert cfg.model_settings.metric == "nuscenes"
    assert "model_cfg.metric='t4' from" in notes and "--cfg-options sets 'nuscenes'" in notes


def test_an_evaluator_whose_labels_are_not_the_heads_is_refused(tmp_path):
    swapped = T4METRIC_V2.replace("evaluation_task=\"detection\", target_labels=class_names",
                                  "evaluation_task=\"detection\", target_labels=class_names[::-1]")
    with pytest.raises(ConfigError) as err:
        load(newest(tmp_path), model_cfg=str(model_config(tmp_path, swapped)))
    assert err.value.key.endswith("evaluation_config_dict.target_labels")


# -- --rot-y-axis-reference -------------------------------------------------------------------------
_PRINT = """
from awml_harness.stash_keys import SESSION_KEY

def pytest_collection_finish(session):
    for cid, cfg in session.config.stash[SESSION_KEY].configs.items():
        print("SETTING", cid, getattr(cfg.model_settings, "rot_y_axis_reference", "-"))
"""


def _collect(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text(_PRINT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    return subprocess.run([sys.executable, "-m", "pytest", str(tmp_path), "--co", "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(REPO), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


def test_rot_y_axis_reference_is_the_upstream_flag(tmp_path):
    yolox = REPO / "projects" / "YOLOX_opt_elan" / "configs" / "deploy_config.py"
    deploy = newest(tmp_path, f"model_cfg = {str(model_config(tmp_path))!r}\n")
    out = _collect(tmp_path, "--deploy-cfg", str(deploy), "--deploy-cfg", str(yolox), "--rot-y-axis-reference")
    assert "SETTING CenterPoint True" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    assert "SETTING YOLOX_opt_elan -" in out.stdout  # a project without the setting is left alone
    plain = _collect(tmp_path, "--deploy-cfg", str(deploy))
    assert "SETTING CenterPoint False" in plain.stdout, plain.stdout[-2000:] + plain.stderr[-2000:]
    alone = _collect(tmp_path, "--deploy-cfg", str(yolox), "--rot-y-axis-reference")
    assert alone.returncode == 4 and "--rot-y-axis-reference: no loaded deploy config" in alone.stderr
