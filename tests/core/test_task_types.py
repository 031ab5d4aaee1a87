"""Task types are open: a project declares its own, the core keeps no list of them, and a
deploy config whose `task_type` is not its project's is a config error naming both."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from awml_harness.config.errors import ConfigError
from awml_harness.config.load import load_deploy_config
from awml_harness.config.schema import DeployConfig
from awml_harness.config.validation import from_mapping

TOY = Path(__file__).parents[1] / "toy"
REPO = Path(__file__).parents[2]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def painter(tmp_path, monkeypatch):
    """A project of a task type no shipped project has, importable as 'module:Class'."""
    write(tmp_path / "painter_mod.py", """
        from awml_harness.project import ProjectAdapter

        class Painter(ProjectAdapter):
            name = "Painter"
            task_type = "inpainting2d"

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
    return "painter_mod:Painter"


def test_the_schema_accepts_any_task_type_name():
    cfg = from_mapping(DeployConfig, {"project": "X", "task_type": "segmentation2d"})
    assert cfg.task_type == "segmentation2d"


@pytest.mark.parametrize("bad", ["", "two words", "3d", "seg/2d"])
def test_a_task_type_that_is_no_name_is_refused(bad):
    with pytest.raises(ConfigError) as info:
        from_mapping(DeployConfig, {"project": "X", "task_type": bad})
    assert info.value.key == "task_type" and "a task type name" in info.value.allowed


def test_a_project_of_a_new_task_type_loads(tmp_path, painter):
    cfg = load_deploy_config(write(tmp_path / "c.yaml", f"project: '{painter}'\ntask_type: inpainting2d\n"),
                             base_dir=TOY)
    assert cfg.task_type == "inpainting2d"


def test_a_config_disagreeing_with_its_project_names_both(tmp_path, painter):
    path = write(tmp_path / "c.yaml", f"project: '{painter}'\ntask_type: classification\n")
    with pytest.raises(ConfigError) as info:
        load_deploy_config(path, base_dir=TOY)
    err = info.value
    assert err.key == "task_type" and err.value == "classification"
    assert err.allowed == "'inpainting2d', the task type project Painter declares"
    assert "'classification'" in str(err) and "'inpainting2d'" in str(err) and str(path.resolve()) in str(err)


def test_a_shipped_config_with_another_projects_task_type_is_refused(tmp_path):
    """What the mismatch check exists for: a project declared `classification` to pass
    the old closed list would now be caught."""
    (tmp_path / "c.yaml").write_text("project: Toy\ntask_type: detection3d\n")
    with pytest.raises(ConfigError) as info:
        load_deploy_config(tmp_path / "c.yaml", base_dir=TOY)
    assert info.value.key == "task_type" and "'classification', the task type project Toy declares" == info.value.allowed


def test_a_project_declaring_no_task_type_is_a_config_error(tmp_path, monkeypatch):
    write(tmp_path / "mute_mod.py", """
        from awml_harness.project import ProjectAdapter

        class Mute(ProjectAdapter):
            name = "Mute"
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as info:
        load_deploy_config(write(tmp_path / "c.yaml", "project: 'mute_mod:Mute'\ntask_type: classification\n"),
                           base_dir=TOY)
    assert info.value.key == "project" and "declares none" in info.value.allowed


def test_the_metrics_json_schema_takes_any_task_type_name():
    import jsonschema

    schema = json.loads((REPO / "awml_harness" / "report" / "metrics.schema.json").read_text())
    project_schema = {"$defs": schema["$defs"], "$ref": "#/$defs/project"}
    entry = {"project": "P", "task_type": "segmentation2d", "config": "c.py", "export_mode": "onnx",
             "artifacts": [], "verification": {"passed": 0, "failed": 0, "results": []},
             "evaluation": {"reference": "pytorch", "backends": {}}, "latency": {}}
    jsonschema.validate(entry, project_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**entry, "task_type": "not a name"}, project_schema)


def test_the_core_keeps_no_list_of_task_types():
    """No module of the harness spells a task type name: the projects own them."""
    core = REPO / "awml_harness"
    names = ("classification", "detection2d", "detection3d", "segmentation")
    hits = []
    for path in sorted(core.rglob("*")):
        if path.suffix not in (".py", ".json") or "__pycache__" in path.parts:
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if any(f'"{n}"' in code or f"'{n}'" in code for n in names):
                hits.append(f"{path.relative_to(REPO)}:{lineno}: {line.strip()}")
    assert not hits, "task type names in the core:\n" + "\n".join(hits)
