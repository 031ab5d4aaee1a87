"""The harness as an installed package: projects registered through the entry-point group
`awml_harness.projects`, configs that name their data relative to themselves
(`{{ fileDirname }}`), the embedded default of `pytest --pyargs awml_harness.suites`, and
the wheel's package list. tools/wheel_check.sh builds and installs the real wheel; these
are the fast in-process checks of the same rules."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from awml_harness import options
from awml_harness.config.errors import ConfigError
from awml_harness.config.load import load_deploy_config
from awml_harness.config.read import read_file
from awml_harness.project import ENTRY_POINT_GROUP, load_project_class, registered_default_configs, resolve_project

REPO = Path(__file__).resolve().parents[2]
TOY = REPO / "tests" / "toy" / "projects" / "Toy"
SHIPPED = sorted(p.parent.name for p in (REPO / "projects").glob("*/project.py"))


def write_distribution(site: Path, dist: str, entries: dict[str, str]) -> None:
    """An installed distribution as importlib.metadata sees one: a `*.dist-info` folder
    with METADATA and entry_points.txt on a sys.path entry."""
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entries.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")


def write_outside_project(site: Path, package: str = "outside_pkg", name: str = "Outside") -> Path:
    """A project living in an installed package, not under any projects/ folder: the Toy
    project under another name, with a default config beside its module."""
    pkg = site / package
    (pkg / "configs").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    shutil.copy(TOY / "project.py", pkg / "toy.py")
    (pkg / "project.py").write_text(textwrap.dedent(f"""\
        import os

        from {package}.toy import Project as _Toy

        if os.environ.get("AWML_OUTSIDE_MARK"):  # tells a subprocess test that this module was imported
            with open(os.environ["AWML_OUTSIDE_MARK"], "a") as fh:
                fh.write("imported\\n")


        class Project(_Toy):
            name = "{name}"
            default_configs = ("configs/deploy.yaml",)
        """))
    config = (TOY / "configs" / "deploy.yaml").read_text().replace("project: Toy", f"project: {name}")
    (pkg / "configs" / "deploy.yaml").write_text(config)
    return pkg


@pytest.fixture(autouse=True)
def _forget_outside_modules():
    yield
    for name in [m for m in sys.modules if m == "outside_pkg" or m.startswith("outside_pkg.")]:
        del sys.modules[name]


@pytest.fixture
def outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """sys.path entry holding an installed distribution `outside-proj` that registers
    `Outside = "outside_pkg.project:Project"` (no file of it under the repository)."""
    site = tmp_path / "site"
    write_distribution(site, "outside_proj", {"Outside": "outside_pkg.project:Project"})
    write_outside_project(site)
    monkeypatch.syspath_prepend(str(site))
    return site


def test_entry_point_finds_a_project_outside_the_tree(outside: Path, tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert resolve_project("Outside", [elsewhere]) == "outside_pkg.project:Project"
    cls = load_project_class("Outside", [elsewhere])
    assert (cls.__module__, cls.name) == ("outside_pkg.project", "Outside")
    # a deploy config outside every tree names it, and the run loads it
    config = elsewhere / "deploy.yaml"
    shutil.copy(outside / "outside_pkg" / "configs" / "deploy.yaml", config)
    cfg = load_deploy_config(config, overrides=[], base_dir=elsewhere)
    assert cfg.project == "Outside" and cfg.project_dir == "outside_pkg.project:Project"


def test_a_projects_folder_comes_before_the_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    site = tmp_path / "site"
    write_distribution(site, "shadow_proj", {"Toy": "outside_pkg.project:Project"})
    write_outside_project(site)
    monkeypatch.syspath_prepend(str(site))
    tree = tmp_path / "clone"
    shutil.copytree(TOY.parent, tree / "projects")
    (tree / "configs").mkdir()
    assert resolve_project("Toy", [tree / "configs"]) == str((tree / "projects" / "Toy").resolve())
    # the same name from a folder with no projects/Toy above it: the registered class
    assert resolve_project("Toy", [tmp_path / "site"]) == "outside_pkg.project:Project"


def test_an_unknown_project_lists_the_registered_names(outside: Path, tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        resolve_project("Nowhere", [tmp_path])
    message = str(info.value)
    assert "config key 'project' = 'Nowhere' is invalid" in message
    assert f"entry-point group {ENTRY_POINT_GROUP} (registered: " in message
    assert "Outside" in message.split("registered: ")[1]
    assert "\n" not in message


def test_two_distributions_registering_one_name_is_a_config_error(outside: Path, tmp_path: Path):
    write_distribution(outside, "rival_proj", {"Outside": "rival_pkg.project:Project"})
    with pytest.raises(ConfigError) as info:
        resolve_project("Outside", [tmp_path])
    assert "2 register it" in str(info.value)
    assert "outside_pkg.project:Project" in str(info.value) and "rival_pkg.project:Project" in str(info.value)


def test_default_configs_are_relative_to_the_project_module(outside: Path):
    assert outside / "outside_pkg" / "configs" / "deploy.yaml" in registered_default_configs()


def test_a_missing_default_config_names_the_project(outside: Path):
    text = (outside / "outside_pkg" / "project.py").read_text().replace("configs/deploy.yaml", "configs/gone.yaml")
    (outside / "outside_pkg" / "project.py").write_text(text)
    with pytest.raises(ConfigError) as info:
        registered_default_configs()
    assert "outside_pkg.project.Project.default_configs" in str(info.value) and "'Outside'" in str(info.value)


@pytest.mark.parametrize("mmengine", [True, False], ids=["mmengine", "fallback"])
def test_file_dirname_in_python_and_yaml_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mmengine: bool):
    if mmengine:
        pytest.importorskip("mmengine.config")
    else:  # the reader's own path (no mmengine installed)
        monkeypatch.setitem(sys.modules, "mmengine.config", None)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.py").write_text(
        'data = "{{ fileDirname }}/data"\nnames = "{{fileBasename}} {{ fileBasenameNoExtension }} {{ fileExtname }}"\n')
    (tmp_path / "deploy.py").write_text('_base_ = ["./sub/base.py"]\nmine = "{{ fileDirname }}/ck.pth"\n')
    (tmp_path / "deploy.yaml").write_text('checkpoint_path: "{{ fileDirname }}/ck.pth"\n')
    assert read_file(tmp_path / "deploy.py") == {
        "data": f"{tmp_path}/sub/data", "names": "base.py base .py", "mine": f"{tmp_path}/ck.pth"}
    assert read_file(tmp_path / "deploy.yaml") == {"checkpoint_path": f"{tmp_path}/ck.pth"}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_default_configs_find_their_data_from_any_rootdir(name: str, tmp_path: Path):
    cls = load_project_class(name, [REPO])
    (config,) = cls.default_configs
    cfg = load_deploy_config(REPO / "projects" / name / config, overrides=[], base_dir=tmp_path)
    for path in (cfg.checkpoint_path, cfg.runtime_io.info_file, cfg.runtime_io.data_root):
        if path is not None:
            assert path.exists() and REPO in path.resolve().parents, path
    assert tmp_path in cfg.export.work_dir.parents  # the work dir stays the run's


def run_config(tmp_path: Path, args: list[str], pyargs: bool = False) -> SimpleNamespace:
    return SimpleNamespace(args=args, option=SimpleNamespace(pyargs=pyargs),
                           invocation_params=SimpleNamespace(dir=tmp_path))


@pytest.mark.parametrize(("args", "pyargs", "used"), [
    (["awml_harness.suites"], True, True),
    (["awml_harness.suites.test_export::test_export"], True, True),
    (["awml_harness.suites"], False, False),  # without --pyargs it is a (missing) path
    (["awml_harness.suitesx"], True, False),
    (["<suites>/test_export.py::test_export"], False, True),
    (["<suites>"], False, True),
    (["<rel>"], False, True),  # relative to where pytest was invoked
    (["<suites>/.."], False, False),  # a folder above the suites: a repository's own tests
    (["."], False, False),
    (["tests", "<suites>"], False, True),
])
def test_the_embedded_default_only_when_the_suites_are_collected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                args: list[str], pyargs: bool, used: bool):
    import importlib.util

    suites = Path(importlib.util.find_spec("awml_harness.suites").submodule_search_locations[0])
    calls: list[int] = []
    monkeypatch.setattr("awml_harness.project.registered_default_configs", lambda: calls.append(1) or [Path("d.py")])
    rel = Path(*[".."] * len(tmp_path.resolve().parts[1:])) / suites.resolve().relative_to("/")
    args = [a.replace("<suites>", str(suites)).replace("<rel>", str(rel)) for a in args]
    assert options.embedded_default(run_config(tmp_path, args, pyargs)) == ([Path("d.py")] if used else [])
    assert calls == ([1] if used else [])  # no project is imported for a run that does not collect the suites


def test_a_broken_registration_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    def broken() -> list[Path]:
        raise ConfigError("project", "Broken", "an importable module")

    monkeypatch.setattr("awml_harness.project.registered_default_configs", broken)
    with pytest.raises(pytest.UsageError, match="config key 'project' = 'Broken'"):
        options.embedded_default(run_config(tmp_path, ["awml_harness.suites"], pyargs=True))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID", "PYTEST_ADDOPTS",
                "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(var, raising=False)


def test_pyargs_suites_run_the_registered_defaults_and_other_runs_load_none(
        pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None):
    site = tmp_path / "site"
    write_distribution(site, "outside_proj", {"Outside": "outside_pkg.project:Project"})
    write_outside_project(site)
    mark = tmp_path / "imported.txt"
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("AWML_OUTSIDE_MARK", str(mark))
    pytester.makeini("[pytest]\n")  # no awml_deploy_configs: the run is like one outside a clone
    pytester.makepyfile(test_mine=textwrap.dedent("""\
        from awml_harness.stash_keys import SESSION_KEY

        def test_no_harness_session(request):
            assert request.config.stash.get(SESSION_KEY, None) is None
        """))
    mine = pytester.runpytest_subprocess("test_mine.py", "-p", "no:cacheprovider")
    mine.assert_outcomes(passed=1)
    assert not mark.exists()  # the registered project was not even imported
    suites = pytester.runpytest_subprocess("--pyargs", "awml_harness.suites", "-p", "no:cacheprovider",
                                           "--collect-only", "-q", "-k", "Outside")
    assert suites.ret == 0, suites.stdout.str()[-3000:] + suites.stderr.str()[-3000:]
    suites.stdout.fnmatch_lines(["*test_export.py::test_export[[]Outside*"])
    assert mark.exists()


def test_registered_defaults_import_no_torch():
    code = ("import sys\nfrom awml_harness.project import registered_default_configs\n"
            "print(len(registered_default_configs()), sorted(m for m in ('torch', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split(" ", 1)[1].strip() == "[]", out.stdout


def test_the_wheel_lists_every_package_and_registers_every_shipped_project():
    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = set(meta["tool"]["setuptools"]["packages"])
    mapped = meta["tool"]["setuptools"]["package-dir"]
    core = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "awml_harness").rglob("__init__.py")}
    assert core <= packages, f"add to [tool.setuptools] packages: {sorted(core - packages)}"
    assert mapped == {"awml_harness.suites": "suites", "awml_projects.projects": "projects",
                      "awml_projects.fixtures": "fixtures"}
    assert {f"awml_projects.projects.{name}" for name in SHIPPED} <= packages
    registered = meta["project"]["entry-points"][ENTRY_POINT_GROUP]
    assert registered == {name: f"awml_projects.projects.{name}.project:Project" for name in SHIPPED}
