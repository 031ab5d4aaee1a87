"""Reading an OpenMMLab model config without running the user's code.

An AWML model config names the modules it needs in `custom_imports`
(`projects.CenterPoint.models`, `autoware_ml.detection3d...`) and may inherit configs
shipped inside an installed package (`_base_ = ["mmpretrain::_base_/models/resnet18.py"]`).
Reading it must not import any of that: the harness only needs the values. So:

- mmengine's `Config.fromfile(..., import_custom_modules=False)` reads it; the
  `custom_imports` stay in the result as data (:func:`custom_imports` lists them) and
  are only imported by the optional registry path, which builds the user's own modules;
- a `pkg::path` base is looked up in the installed package's folder through
  `importlib.util.find_spec` (which locates the package without importing it) instead
  of mmengine 0.10's `pkg_resources` lookup, which current setuptools no longer ships.
  A missing package is one ConfigError naming what to install.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from awml_harness.config.errors import ConfigError

_PATCH_LOCK = threading.Lock()
_EXTERNAL_BASE = re.compile(r"^(\w+)::(.+)$")


def package_dir(package: str) -> Path | None:
    """The folder of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def external_bases(path: Path) -> list[tuple[str, str]]:
    """`(package, relative path)` for each `pkg::` entry of the file's literal `_base_`."""
    from awml_harness.config.bases import declared_bases

    matches = (_EXTERNAL_BASE.match(base) for base in declared_bases(path))
    return [(m.group(1), m.group(2)) for m in matches if m]


def _check_external_bases(path: Path, key: str) -> None:
    """One error naming every package the config's `pkg::` bases need and lack."""
    missing = sorted({_pip_name(pkg) for pkg, _ in external_bases(path) if package_dir(pkg) is None})
    if missing:
        raise ConfigError(
            key, str(path),
            f"its _base_ inherits configs shipped inside {', '.join(missing)}, which is not installed here: "
            f"pip install {' '.join(missing)} (only its config files are read; nothing of it is imported)",
        )


def _module_to_package() -> dict[str, str]:
    try:
        from mmengine.config.utils import MODULE2PACKAGE  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - mmengine-lite is a dependency
        return {}
    return dict(MODULE2PACKAGE)


def _pip_name(module: str) -> str:
    """`mmseg` is installed as `mmsegmentation`: mmengine's own table says which."""
    return _module_to_package().get(module, module)


@contextmanager
def _package_lookup_without_pkg_resources() -> Iterator[None]:
    """mmengine 0.10 resolves `pkg::` through `pkg_resources`; answer the same two
    questions (installed? where?) with importlib for the duration of one read."""
    import mmengine.config.config as mm_config  # type: ignore[import-not-found]

    # mmengine asks by pip name (`mmsegmentation`); the folder is the module's (`mmseg`)
    to_module = {pkg: mod for mod, pkg in _module_to_package().items()}

    def is_installed(package: str) -> bool:
        return package_dir(to_module.get(package, package)) is not None

    def get_installed_path(package: str) -> str:
        found = package_dir(to_module.get(package, package))
        if found is None:
            raise ModuleNotFoundError(package)
        return str(found)

    with _PATCH_LOCK:
        saved = {n: getattr(mm_config, n) for n in ("is_installed", "get_installed_path") if hasattr(mm_config, n)}
        mm_config.is_installed = is_installed
        mm_config.get_installed_path = get_installed_path
        try:
            yield
        finally:
            for n, v in saved.items():
                setattr(mm_config, n, v)


def read_model_config(path: Path | str, key: str = "model_cfg") -> dict[str, Any]:
    """The config's values (mmengine `Config` semantics: `_base_`, `{{_base_.x}}`,
    `_base_.x` references), with nothing of the user's imported. ConfigError on `key`
    for a missing file, a missing base file or package, or a file that does not load."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(key, str(path), "an existing OpenMMLab model config (.py) or a native model_cfg file")
    if path.suffix != ".py":
        from awml_harness.config.read import read_file

        return read_file(path)
    _check_external_bases(path, key)
    from mmengine.config import Config  # type: ignore[import-not-found]

    try:
        with _package_lookup_without_pkg_resources():
            cfg = Config.fromfile(str(path), import_custom_modules=False)
    except FileNotFoundError as exc:
        missing = getattr(exc, "filename", None) or str(exc)
        raise ConfigError(key, str(path), f"a config whose _base_ files exist; {missing} does not "
                                          "(check the relative path in _base_)") from None
    except Exception as exc:
        raise ConfigError(key, str(path), f"a loadable OpenMMLab config ({type(exc).__name__}: {exc})") from None
    return {k: v for k, v in cfg.to_dict().items() if not str(k).startswith("__")}


def custom_imports(data: dict[str, Any]) -> list[str]:
    """The modules a config's `custom_imports` names (recorded, never imported here)."""
    spec = data.get("custom_imports") or {}
    imports = spec.get("imports", []) if isinstance(spec, dict) else []
    return [imports] if isinstance(imports, str) else [str(m) for m in imports]
