"""The Autoware package agrees with the model: every value the model's ROS node reads
from its parameter files, each file against its JSON schema, each ONNX file's I/O.

The package is `package.check_dir` (or `--awml-package DIR`), else the one the harness
wrote (test_export[<config>-package-autoware]). A failure names the file, the key and
both values: a package whose `voxel_size` differs from the model config's is a
deployment bug no ONNX comparison catches.
"""

from __future__ import annotations

import pytest


def test_package(awml, awml_package_case, awml_record, guard_backend):
    case = awml_package_case
    ctx = awml.context(case.config_id)
    with guard_backend():
        verdict = ctx.check_package(case.file, case.key)
    awml_record({"kind": "package", "config": case.config_id, "folder": str(ctx.package.folder),
                 "written": ctx.cfg.package.check_dir is None, **verdict.record()})
    if not verdict.passed:
        pytest.fail(verdict.message, pytrace=False)
