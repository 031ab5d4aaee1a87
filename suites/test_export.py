"""Artifacts exist, pass onnx.checker, open in ONNX Runtime and expose the I/O the deploy config promises."""

from __future__ import annotations

import pytest


def test_export(awml, awml_export_case, awml_record, guard_backend):
    from awml_harness.cases import AUTOWARE, target_precision

    case = awml_export_case
    ctx = awml.context(case.config_id)
    cfg = ctx.cfg
    if case.target == AUTOWARE:  # the parameter files Autoware's node reads, beside the ONNX files
        with guard_backend():
            package = ctx.package_artifact()
        awml_record({"kind": "export", "config": case.config_id, "artifacts": ctx.all_artifacts()})
        from awml_harness.autoware import METADATA_FILE

        assert (package.folder / METADATA_FILE).is_file(), f"{package.folder}: no {METADATA_FILE}"
        return
    with guard_backend():
        precision = target_precision(case.target)
        if precision is None:
            from awml_harness.config.schema import Backend, BackendSpec

            spec = next((s for s in cfg.evaluation.specs().values() if s.backend is Backend.TENSORRT),
                        BackendSpec(Backend.TENSORRT, "cuda:0"))
            from awml_harness.backends.tensorrt import require_tensorrt

            require_tensorrt(spec.device)
            art = ctx.engine_artifacts(spec)[case.graph]
            awml_record({"kind": "export", "config": case.config_id, "artifacts": ctx.all_artifacts()})
            assert art.path.stat().st_size > 0
            return
        art = ctx.onnx_artifacts(precision)[case.graph]
    awml_record({"kind": "export", "config": case.config_id, "artifacts": ctx.all_artifacts()})

    from awml_harness.export.onnx import ExportError, check, check_loads, io_signature

    check(art.path)
    try:  # a runtime must open it, not only onnx.checker (an fp16 variant can pass one and not the other)
        check_loads(art.path, "ONNX export" if precision == "fp32" else f"{precision} conversion (export/{precision}.py)")
    except ExportError as exc:
        pytest.fail(str(exc), pytrace=False)
    graph = ctx.graphs[case.graph]
    sig = io_signature(art.path)
    assert list(sig["inputs"]) == list(graph.input_names), (
        f"{art.path.name}: inputs {list(sig['inputs'])} but graph {graph.name!r} declares {list(graph.input_names)}")
    assert list(sig["outputs"]) == list(graph.output_names), (
        f"{art.path.name}: outputs {list(sig['outputs'])} but graph {graph.name!r} declares {list(graph.output_names)}")
    for name in graph.input_names:
        want = list(graph.example_inputs[name].shape)
        got = sig["inputs"][name]
        dynamic = set(graph.dynamic_axes.get(name, {}))
        for axis, (g, w) in enumerate(zip(got, want, strict=False)):
            if axis in dynamic:
                assert isinstance(g, str) or g == w, f"{name} axis {axis} should be dynamic, file says {g}"
            else:
                assert g == w, f"input {name!r} shape in {art.path.name} is {got}, traced with {want}"
        assert len(got) == len(want), f"input {name!r} rank {len(got)} != {len(want)}"

    io = cfg.model_io
    if io.input_name is not None and case.graph == ctx.adapter.graph_names()[0]:
        assert io.input_name in sig["inputs"], (
            f"model_io.input_name={io.input_name!r} is not an input of {art.path.name}: {list(sig['inputs'])}")
        if io.input_shape is not None:
            got = sig["inputs"][io.input_name][1:]
            dyn = {a - 1 for a in graph.dynamic_axes.get(io.input_name, {}) if a > 0}
            for axis, (g, w) in enumerate(zip(got, io.input_shape, strict=False)):
                assert axis in dyn or g == w, (
                    f"model_io.input_shape={list(io.input_shape)} but {art.path.name} has {got}")
    if io.output_name is not None and case.graph == ctx.adapter.graph_names()[-1]:
        assert io.output_name in sig["outputs"], (
            f"model_io.output_name={io.output_name!r} is not an output of {art.path.name}: {list(sig['outputs'])}")
        if io.output_shape is not None:
            got = sig["outputs"][io.output_name][1:]
            assert all(isinstance(g, str) or g == w for g, w in zip(got, io.output_shape, strict=False)) and len(got) == len(io.output_shape), (
                f"model_io.output_shape={list(io.output_shape)} but {art.path.name} has {got}")
    # the seed's further declarations: each name is an input / output of one of the graphs
    if io.additional_inputs and case.graph == ctx.adapter.graph_names()[0]:
        names = {n for g in ctx.graphs.values() for n in g.input_names}
        missing = [spec.name for spec in io.additional_inputs if spec.name not in names]
        assert not missing, f"model_io.additional_inputs {missing} are inputs of no exported graph: {sorted(names)}"
    if io.additional_outputs and case.graph == ctx.adapter.graph_names()[-1]:
        names = {n for g in ctx.graphs.values() for n in g.output_names}
        missing = [n for n in io.additional_outputs if n not in names]
        assert not missing, f"model_io.additional_outputs {missing} are outputs of no exported graph: {sorted(names)}"
