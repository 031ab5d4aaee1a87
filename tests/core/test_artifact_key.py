"""The ONNX artifact key covers the code that produced the file (issue 12, item 5)."""

from __future__ import annotations

import json
from pathlib import Path

from awml_harness.export.store import code_digest


def _export(toy_repo):
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export")
    result.assert_outcomes(passed=1)
    doc = json.loads((toy_repo.path / "work_dirs" / "toy" / "metrics.json").read_text())
    return result, doc["projects"]["Toy"]["artifacts"][0]


def test_editing_the_model_code_rebuilds_the_onnx_file_and_a_deploy_config_does_not(toy_repo):
    _, first = _export(toy_repo)
    # a deploy config beside the project enters keys as parsed settings, not as source
    (toy_repo.path / "projects" / "Toy" / "configs" / "extra.py").write_text("# another deploy config\n")
    _, again = _export(toy_repo)
    assert again["reused"] is True and again["key"] == first["key"]

    project = toy_repo.path / "projects" / "Toy" / "project.py"
    source = project.read_text()
    assert "torch.nn.ReLU()" in source
    project.write_text(source.replace("torch.nn.ReLU()", "torch.nn.Tanh()"))  # same weights, other activation
    result, edited = _export(toy_repo)
    assert edited["reused"] is False and edited["key"] != first["key"]
    result.stdout.no_fnmatch_line("*reused from cache*")

    (toy_repo.path / "projects" / "Toy" / "layers.py").write_text("SCALE = 2\n")  # a new helper module
    _, helper = _export(toy_repo)
    assert helper["reused"] is False and helper["key"] not in (first["key"], edited["key"])


def test_code_digest_depends_on_content_and_relative_path_not_on_order(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    a, b = tmp_path / "a.py", tmp_path / "sub" / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 2\n")
    d = code_digest([a, b], tmp_path)
    assert d == code_digest([b, a, a], tmp_path)
    b.write_text("y = 3\n")
    assert code_digest([a, b], tmp_path) != d
    b.write_text("y = 2\n")
    moved = tmp_path / "b.py"
    b.rename(moved)
    assert code_digest([a, moved], tmp_path) != d


def test_source_files_of_a_project_folder(tmp_path: Path):
    from awml_harness.export.store import source_files

    proj = tmp_path / "projects" / "Det"
    for rel in ("__init__.py", "project.py", "layers/head.py", "configs/deploy.py", "__pycache__/x.py",
                ".hidden/y.py", "venv/lib/z.py", "notes.txt"):
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / rel).write_text("#\n")
    (proj / "venv" / "pyvenv.cfg").write_text("home = /usr\n")
    assert [p.relative_to(proj).as_posix() for p in source_files(proj)] == [
        "__init__.py", "project.py", "layers/head.py"]
    (tmp_path / "adapter.py").write_text("#\n")  # a module at a repository root: not the whole tree
    assert source_files(tmp_path) == [tmp_path / "adapter.py"]
    # a project folder the loader resolved needs no __init__.py: its subfolders count
    (proj / "__init__.py").unlink()
    assert [p.name for p in source_files(proj)] == ["project.py"]
    assert [p.relative_to(proj).as_posix() for p in source_files(proj, whole_tree=True)] == [
        "project.py", "layers/head.py"]


def test_a_project_folder_without_init_is_hashed_whole(tmp_path: Path):
    """Project folders need no __init__.py (shipped ones have none): the folder the loader
    resolved is the project, so a module in a subfolder is part of the artifact key."""
    import shutil

    from awml_harness.config.load import load_deploy_config
    from awml_harness.session import ProjectContext, RunOptions

    toy = Path(__file__).resolve().parents[1] / "toy" / "projects" / "Toy"
    proj = tmp_path / "projects" / "Toy"
    shutil.copytree(toy, proj, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    (proj / "layers").mkdir()
    (proj / "layers" / "head.py").write_text("SCALE = 1\n")
    cfg = load_deploy_config(proj / "configs" / "deploy.yaml", base_dir=tmp_path)
    before = ProjectContext(cfg, RunOptions()).code_digests["project"]
    (proj / "layers" / "head.py").write_text("SCALE = 2\n")
    assert ProjectContext(cfg, RunOptions()).code_digests["project"] != before
