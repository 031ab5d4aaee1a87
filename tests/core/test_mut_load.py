"""The config loader (awml_harness/config/load.py): `_base_` merging, overrides and
their scopes, what load_deploy_config adds and checks, pinned so a deliberate bug shows."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from awml_harness.config.errors import ConfigError
from awml_harness.config.load import apply_overrides, load_deploy_config, parse_override, scoped
from awml_harness.config.read import read_file

TOY = Path(__file__).parents[1] / "toy"
HEAD = "project: Toy\ntask_type: classification\n"


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_yaml_bases_merge_in_order_and_the_child_wins(tmp_path):
    write(tmp_path / "a.yaml", "x: {p: 1, q: 1, keep: a}\nlst: [1, 2]\nonly_a: 1\n")
    write(tmp_path / "b.yml", "x: {q: 2, r: 2}\nlst: [3]\n")
    write(tmp_path / "c.yaml", "_base_: [a.yaml, b.yml]\nx: {r: 3}\n")
    got = read_file(tmp_path / "c.yaml")
    assert got == {"x": {"p": 1, "q": 2, "r": 3, "keep": "a"}, "lst": [3], "only_a": 1}
    write(tmp_path / "d.yaml", "_base_: c.yaml\nx: {_delete_: true, z: 0}\n")  # a single base as a string
    assert read_file(str(tmp_path / "d.yaml")) == {"x": {"z": 0}, "lst": [3], "only_a": 1}


def test_a_base_in_a_subfolder_resolves_its_own_bases_next_to_itself(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "root.yaml", "v: 1\nw: 1\n")
    write(tmp_path / "sub" / "mid.yaml", "_base_: root.yaml\nw: 2\n")
    write(tmp_path / "top.yaml", "_base_: sub/mid.yaml\n")
    assert read_file(tmp_path / "top.yaml") == {"v": 1, "w": 2}


def test_merging_never_changes_the_base(tmp_path):
    write(tmp_path / "a.yaml", "x: {p: [1]}\n")
    write(tmp_path / "c1.yaml", "_base_: a.yaml\nx: {q: 1}\n")
    first = read_file(tmp_path / "c1.yaml")
    first["x"]["p"].append(2)
    assert read_file(tmp_path / "c1.yaml") == {"x": {"p": [1], "q": 1}}


def test_python_configs_merge_the_same_way(tmp_path):
    write(tmp_path / "base.py", """
        model = dict(a=1, b=dict(c=2, d=3))
        flags = [1]
    """)
    write(tmp_path / "child.py", """
        _base_ = "base.py"
        model = dict(b=dict(c=20))
    """)
    got = read_file(tmp_path / "child.py")
    assert got["model"] == {"a": 1, "b": {"c": 20, "d": 3}} and got["flags"] == [1]


def test_python_configs_without_mmengine(tmp_path, monkeypatch):
    """The core's own loader (used when mmengine is not installed) follows the same rules."""
    monkeypatch.setitem(sys.modules, "mmengine.config", None)  # import fails as if not installed
    write(tmp_path / "base.py", """
        model = dict(a=1, b=dict(c=2, d=3))
        other = dict(k=1)
    """)
    write(tmp_path / "child.py", """
        import os
        _base_ = ["base.py"]
        model = dict(b=dict(c=20))
        other = dict(_delete_=True, j=2)
        def helper():
            return 1
        class Local:
            pass
        __private = 1
        _hidden = 5
    """)
    got = read_file(tmp_path / "child.py")
    assert got == {"model": {"a": 1, "b": {"c": 20, "d": 3}}, "other": {"j": 2}, "_hidden": 5}
    write(tmp_path / "broken.py", "x = 1 / 0\n")
    with pytest.raises(ConfigError) as info:
        read_file(tmp_path / "broken.py")
    assert info.value.key == "<file>" and info.value.value == str(tmp_path / "broken.py")
    assert info.value.allowed.startswith("a loadable Python config (ZeroDivisionError: ")


def test_unreadable_python_with_mmengine_names_the_error(tmp_path):
    write(tmp_path / "broken.py", "x = 1 / 0\n")
    with pytest.raises(ConfigError) as info:
        read_file(tmp_path / "broken.py")
    assert info.value.key == "<file>" and info.value.value == str(tmp_path / "broken.py")
    assert info.value.allowed.startswith("a loadable Python config (ZeroDivisionError: ")


def test_file_errors(tmp_path):
    write(tmp_path / "list.yaml", "- 1\n- 2\n")
    with pytest.raises(ConfigError) as info:
        read_file(tmp_path / "list.yaml")
    assert (info.value.key, info.value.value, info.value.allowed) == ("<root>", [1, 2], "a YAML mapping at the top level")
    write(tmp_path / "empty.yml", "")
    with pytest.raises(ConfigError, match="a YAML mapping at the top level"):
        read_file(tmp_path / "empty.yml")
    write(tmp_path / "bad.yaml", "a: [\n")
    with pytest.raises(ConfigError) as info:
        read_file(tmp_path / "bad.yaml")
    assert info.value.key == "<file>" and info.value.allowed.startswith("valid YAML (")
    assert info.value.value == str(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError) as info:
        read_file(tmp_path / "missing.yaml")
    assert (info.value.key, info.value.allowed) == ("--deploy-cfg", "an existing .py, .yaml or .yml file")
    assert info.value.value == str(tmp_path / "missing.yaml")
    write(tmp_path / "c.json", "{}")
    with pytest.raises(ConfigError) as info:
        read_file(tmp_path / "c.json")
    assert (info.value.key, info.value.value, info.value.allowed) == (
        "--deploy-cfg", str(tmp_path / "c.json"), "a file ending in .py, .yaml or .yml")
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ConfigError, match="an existing .py"):
        read_file(tmp_path / "dir.yaml")


def test_override_values():
    assert parse_override(" a.b =2") == ("a.b", 2)
    assert parse_override("a=x=y") == ("a", "x=y")  # the first '=' splits
    assert parse_override("a={'k': (1, 2)}") == ("a", {"k": (1, 2)})
    assert parse_override("a='quoted'") == ("a", "quoted")
    for raw, value in (("True", True), ("TRUE", True), ("false", False), ("None", None), ("none", None),
                       ("null", None), ("NULL", None)):
        assert parse_override(f"a={raw}") == ("a", value)
    assert parse_override("a=") == ("a", "")
    assert parse_override("a=cuda:0") == ("a", "cuda:0")
    for bad in ("=1", " =1", "a"):
        with pytest.raises(ConfigError) as info:
            parse_override(bad)
        assert info.value.key == "--cfg-options" and info.value.value == bad
        assert info.value.allowed == "KEY=VALUE with a dotted key, e.g. verification.default.atol=1e-6"


def test_scopes():
    assert scoped("Toy:a.b=1") == ("Toy", "a.b=1")
    assert scoped("a.b=1") == (None, "a.b=1")
    assert scoped(":a=1") == (None, ":a=1")  # empty scope is no scope
    assert scoped("a.b:c=1") == (None, "a.b:c=1")  # a colon inside a dotted key
    assert scoped("a=x:y") == (None, "a=x:y")  # a colon inside the value
    assert scoped("Toy:b:c=1") == ("Toy", "b:c=1")


def test_apply_overrides_builds_replaces_and_copies():
    base = {"a": {"b": 1, "keep": [1]}, "s": "x"}
    out = apply_overrides(base, ["a.b=2", "a.c.d=3", "s=[1]", "new=1"])
    assert out == {"a": {"b": 2, "keep": [1], "c": {"d": 3}}, "s": [1], "new": 1}
    assert base == {"a": {"b": 1, "keep": [1]}, "s": "x"}  # the input is left alone
    out["a"]["keep"].append(2)
    assert base["a"]["keep"] == [1]
    assert apply_overrides({"a": None}, ["a.b=1"]) == {"a": {"b": 1}}
    assert apply_overrides({"a": 1}, ["a=2", "a=3"]) == {"a": 3}  # later wins
    with pytest.raises(ConfigError) as info:
        apply_overrides({"a": {"b": "text"}}, ["a.b.c=2"])
    assert (info.value.key, info.value.value) == ("a.b.c", 2)
    assert info.value.allowed == "a path through mappings, but 'b' holds str"
    # scoped items apply only to the named scopes
    assert apply_overrides({}, ["P:x=1", "Q:y=2", "z=3"], scope_names=("P", "stem")) == {"x": 1, "z": 3}
    assert apply_overrides({}, ["stem:x=1"], scope_names=("P", "stem")) == {"x": 1}
    assert apply_overrides({}, ["P:x=1"]) == {}


def test_loader_adds_work_dir_unsafe_load_and_sources(tmp_path):
    cfg_path = write(tmp_path / "c.yaml", HEAD + "export: {mode: onnx}\n")
    cfg = load_deploy_config(cfg_path, base_dir=TOY, work_dir="/abs/wd", unsafe_load=True)
    assert cfg.export.work_dir == Path("/abs/wd") and cfg.unsafe_load is True
    assert cfg.source == str(cfg_path.resolve())
    assert cfg.raw["export"] == {"mode": "onnx", "work_dir": "/abs/wd"} and cfg.raw["unsafe_load"] is True
    plain = load_deploy_config(cfg_path, base_dir=TOY)
    assert plain.unsafe_load is False and "unsafe_load" not in plain.raw
    # work_dir with no export section at all
    cfg = load_deploy_config(write(tmp_path / "d.yaml", HEAD), base_dir=TOY, work_dir="rel")
    assert cfg.export.work_dir == TOY.resolve() / "rel"


def test_private_keys_are_dropped_and_reserved_keys_refused(tmp_path):
    cfg = load_deploy_config(write(tmp_path / "c.yaml", HEAD + "_anchor: {a: 1}\n"), base_dir=TOY)
    assert cfg.project == "Toy"
    for reserved in ("source", "raw", "model_settings"):
        with pytest.raises(ConfigError) as info:
            load_deploy_config(write(tmp_path / "r.yaml", HEAD + f"{reserved}: x\n"), base_dir=TOY)
        assert info.value.key == reserved and info.value.value == "x" and info.value.allowed == "not set by the user (filled by the loader)"
        assert info.value.source == str((tmp_path / "r.yaml").resolve())


@pytest.fixture
def bare(tmp_path, monkeypatch):
    """A project without settings, importable as 'module:Class' from anywhere."""
    write(tmp_path / "bare_project_mod.py", """
        from awml_harness.config.errors import ConfigError
        from awml_harness.project import ProjectAdapter

        class Bare(ProjectAdapter):
            name = "Bare"
            task_type = "classification"

            @classmethod
            def check_config(cls, cfg):
                if cfg.verification.num_verify_samples == 13:
                    raise ConfigError("verification.num_verify_samples", 13, "not 13 (Bare's own rule)")

            # the rest of the contract (awml_harness.project.ProjectAdapter), unused by these tests
            def graph_names(self): return ("model",)
            def build_model(self): return None
            def graphs(self, model): return []
            def dataset(self): return []
            def target(self, sample): return None
            def preprocess(self, sample): return None
            def postprocess(self, outputs, prepared): return None
            def evaluator(self): return None
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    return BARE


BARE = "bare_project_mod:Bare"


def test_paths_resolve_against_base_dir_and_absolute_ones_stay(tmp_path, bare):
    data = tmp_path / "data"
    data.mkdir()
    (data / "info.pkl").write_bytes(b"")
    (data / "m.onnx").write_bytes(b"")
    (tmp_path / "ck.pth").write_bytes(b"")
    cfg_path = write(tmp_path / "c.yaml", HEAD + f"checkpoint_path: {tmp_path / 'ck.pth'}\n"
                     "runtime_io: {info_file: info.pkl, data_root: .}\n"
                     "report: {metrics_json: out/m.json}\nexport: {mode: trt, onnx_path: m.onnx}\n")
    cfg = load_deploy_config(cfg_path, base_dir=data, overrides=[f"project={BARE}"])
    assert cfg.checkpoint_path == tmp_path / "ck.pth"
    assert cfg.runtime_io.info_file == data.resolve() / "info.pkl"
    assert cfg.runtime_io.data_root == data.resolve() / "."
    assert cfg.report.metrics_json == data.resolve() / "out" / "m.json"
    assert cfg.export.onnx_path == data.resolve() / "m.onnx"
    assert cfg.export.work_dir is None or cfg.export.work_dir.is_absolute()


def test_base_dir_defaults_to_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(TOY)
    cfg = load_deploy_config(write(tmp_path / "c.yaml", HEAD + "export: {work_dir: wd}\n"))
    assert cfg.export.work_dir == TOY.resolve() / "wd"


@pytest.mark.parametrize(
    ("body", "key", "allowed"),
    [
        ("runtime_io: {data_root: nowhere}\n", "runtime_io.data_root", "an existing directory"),
        ("runtime_io: {data_root: projects/Toy/project.py}\n", "runtime_io.data_root", "an existing directory"),
        ("checkpoint_path: projects\n", "checkpoint_path", "an existing checkpoint file"),
        ("runtime_io: {info_file: nope.pkl}\n", "runtime_io.info_file", "an existing dataset annotation file"),
        ("export: {mode: trt, onnx_path: nope.onnx}\n", "export.onnx_path", "an existing ONNX file or folder"),
    ],
)
def test_missing_files_name_key_and_resolved_path(tmp_path, body, key, allowed):
    with pytest.raises(ConfigError) as info:
        load_deploy_config(write(tmp_path / "c.yaml", HEAD + body), base_dir=TOY)
    assert (info.value.key, info.value.allowed) == (key, allowed)
    assert Path(info.value.value).is_absolute()


def test_existing_files_and_folders_pass_the_checks(tmp_path):
    body = ("runtime_io: {data_root: projects, info_file: projects/Toy/project.py}\n"
            "export: {mode: trt, onnx_path: projects/Toy/project.py}\n")
    cfg = load_deploy_config(write(tmp_path / "c.yaml", HEAD + body), base_dir=TOY)
    assert cfg.export.onnx_path == TOY.resolve() / "projects/Toy/project.py"


def test_device_moves_every_backend_but_tensorrt(tmp_path):
    body = ("evaluation: {backends: {pytorch: {device: cpu}, onnx: {device: cpu}, "
            "tensorrt: {device: 'cuda:1'}}}\n")
    cfg = load_deploy_config(write(tmp_path / "c.yaml", HEAD + body), base_dir=TOY, device="cuda")
    devices = {name: spec.device for name, spec in cfg.evaluation.backends.items()}
    assert devices == {"pytorch": "cuda:0", "onnx": "cuda:0", "tensorrt": "cuda:1"}
    with pytest.raises(ConfigError) as info:
        load_deploy_config(write(tmp_path / "d.yaml", HEAD), base_dir=TOY, device="gpu")
    assert info.value.key == "--device"
    cfg = load_deploy_config(write(tmp_path / "e.yaml", HEAD + body), base_dir=TOY)
    assert cfg.evaluation.backends["pytorch"].device == "cpu"


def test_project_settings_come_from_model_cfg(tmp_path):
    cfg = load_deploy_config(write(tmp_path / "c.yaml", HEAD + "model_cfg: {size: 8}\n"), base_dir=TOY)
    assert cfg.model_settings.size == 8
    assert load_deploy_config(write(tmp_path / "d.yaml", HEAD), base_dir=TOY).model_settings is not None


def test_a_project_without_settings_refuses_model_cfg(tmp_path, bare):
    head = "project: 'bare_project_mod:Bare'\ntask_type: classification\n"
    cfg = load_deploy_config(write(tmp_path / "ok.yaml", head), base_dir=TOY)
    assert cfg.model_settings is None
    with pytest.raises(ConfigError) as info:
        load_deploy_config(write(tmp_path / "c.yaml", head + "model_cfg: {size: 8}\n"), base_dir=TOY)
    assert info.value.key == "model_cfg" and info.value.value == {"size": 8}
    assert info.value.allowed == "nothing: project bare_project_mod:Bare takes no model_cfg"


def test_enum_keys_are_normalised_before_validation(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mmengine.config", None)  # the core loader keeps enum members as they are
    write(tmp_path / "c.py", """
        import enum
        class B(enum.Enum):
            ONNX = "onnx"
            INPUT = "input"
        project = "Toy"
        task_type = "classification"
        evaluation = {"backends": {B.ONNX: {"device": "cpu"}, "pytorch": {}}, "metric_tolerance": {"*": 0.0}}
        backend_config = {"model_inputs": [{"input_shapes": {B.INPUT: {
            "min_shape": [1, 3, 8, 8], "opt_shape": [1, 3, 8, 8], "max_shape": [1, 3, 8, 8]}}}]}
    """)
    cfg = load_deploy_config(tmp_path / "c.py", base_dir=TOY)
    assert set(cfg.evaluation.backends) == {"onnx", "pytorch"}
    assert "onnx" in cfg.raw["evaluation"]["backends"]
    assert list(cfg.raw["backend_config"]["model_inputs"][0]["input_shapes"]) == ["input"]


def test_scoped_overrides_by_config_stem_and_project(tmp_path):
    path = write(tmp_path / "mycfg.yaml", HEAD)
    cfg = load_deploy_config(path, base_dir=TOY, overrides=["mycfg:model_cfg.size=9", "Toy:model_cfg.channels=5",
                                                              "Other:model_cfg.size=4"])
    assert (cfg.model_settings.size, cfg.model_settings.channels) == (9, 5)
    assert cfg.raw["model_cfg"] == {"size": 9, "channels": 5}


def test_config_errors_from_overrides_carry_the_source(tmp_path):
    path = write(tmp_path / "c.yaml", HEAD)
    with pytest.raises(ConfigError) as info:
        load_deploy_config(path, base_dir=TOY, overrides=["verification.num_verify_samples=-3"])
    assert info.value.source == str(path.resolve())
    assert str(info.value).startswith(f"{path.resolve()}: config key 'verification.num_verify_samples'")


def test_the_projects_own_checks_run_on_the_loaded_config(tmp_path, bare):
    head = f"project: '{bare}'\ntask_type: classification\n"
    load_deploy_config(write(tmp_path / "ok.yaml", head), base_dir=TOY)
    with pytest.raises(ConfigError) as info:
        load_deploy_config(write(tmp_path / "c.yaml", head + "verification: {num_verify_samples: 13}\n"), base_dir=TOY)
    assert info.value.allowed == "not 13 (Bare's own rule)" and info.value.source == str((tmp_path / "c.yaml").resolve())


def test_model_cfg_may_name_a_file_next_to_the_deploy_config(tmp_path):
    (tmp_path / "cfgs").mkdir()
    write(tmp_path / "cfgs" / "model.yaml", "size: 12\nchannels: 2\n")
    cfg = load_deploy_config(write(tmp_path / "cfgs" / "c.yaml", HEAD + "model_cfg: model.yaml\n"), base_dir=TOY)
    assert (cfg.model_settings.size, cfg.model_settings.channels) == (12, 2)


def test_a_config_without_project_is_in_no_scope(tmp_path):
    path = write(tmp_path / "c.yaml", "task_type: classification\n")
    cfg = load_deploy_config(path, base_dir=TOY, overrides=["project=Toy", "None:model_cfg.size=9"])
    assert cfg.model_settings.size != 9 and cfg.project == "Toy"


@pytest.mark.parametrize("value", ["''", "projects", "projects/Toy"])
def test_an_info_file_must_name_a_file(tmp_path, value):
    """An empty string reads as the rootdir and a folder is no annotation file: both are refused by name."""
    with pytest.raises(ConfigError) as info:
        load_deploy_config(write(tmp_path / "c.yaml", HEAD + f"runtime_io: {{info_file: {value}}}\n"), base_dir=TOY)
    assert info.value.key == "runtime_io.info_file"
    assert ("an empty path names no file" if value == "''" else "not a directory") in str(info.value)


def test_an_empty_info_file_exits_4(tmp_path):
    import subprocess
    import sys

    cfg = write(tmp_path / "c.yaml", HEAD + "runtime_io: {info_file: ''}\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", "--rootdir", str(TOY),
                          "--deploy-cfg", str(cfg), str(tmp_path)], capture_output=True, text=True, cwd=TOY)
    assert out.returncode == 4 and "runtime_io.info_file" in out.stderr, out.stdout[-1000:] + out.stderr[-1000:]
