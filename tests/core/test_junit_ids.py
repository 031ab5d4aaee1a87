"""`--junitxml` carries small scalar properties only, and test ids do not depend on `-n`
(issue 17 item 5): the whole records travel on the report attribute `awml_records` and
reach the metrics JSON, serial and under pytest-xdist alike."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

SHARDED = ("--cfg-options", "evaluation.chunk_min_samples=2")  # Toy has 5 samples: 2 shards


def _junit(path) -> tuple[list[str], list[tuple[str, str, str]]]:
    tree = ET.parse(path)
    ids = sorted(f"{tc.get('classname')}::{tc.get('name')}" for tc in tree.iter("testcase"))
    props = [(tc.get("name"), p.get("name"), p.get("value")) for tc in tree.iter("testcase") for p in tc.iter("property")]
    return ids, props


def _check_small(props: list[tuple[str, str, str]]) -> None:
    assert props, "no awml property at all"
    for test, name, value in props:
        assert name.startswith("awml_"), (test, name)
        assert len(value) <= 200, (test, name, value[:300])
        assert "__nd__" not in value and "{" not in value and "[" not in value, (test, name, value[:300])


def _collected(pytester: pytest.Pytester, *args: str) -> list[str]:
    out = pytester.runpytest_subprocess("suites", "-q", "-p", "no:cacheprovider", "--collect-only", *args)
    assert out.ret == 0, out.stdout.str()[-2000:]
    return sorted(line for line in out.stdout.lines if "::" in line)


def test_junit_has_small_scalars_and_the_json_has_the_records(toy_repo):
    out = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "--junitxml=serial.xml", *SHARDED)
    assert out.ret == 0, out.stdout.str()[-3000:]
    ids, props = _junit(toy_repo.path / "serial.xml")
    _check_small(props)
    by_test: dict[str, dict[str, str]] = {}
    for test, name, value in props:
        by_test.setdefault(test, {})[name] = value
    ver = by_test["test_verification[Toy-pytorch:cpu-vs-onnx:cpu-s0]"]
    assert (ver["awml_kind"], ver["awml_passed"], ver["awml_sample_index"], ver["awml_test"]) == (
        "verification", "True", "0", "onnx:cpu")
    lat = by_test["test_latency[Toy-onnx:cpu]"]
    assert lat["awml_kind"] == "latency" and float(lat["awml_p50"]) > 0 and lat["awml_unit"] == "ms"
    assert by_test["test_evaluation[Toy-chunk2of2]"]["awml_index"] == "1"
    size = (toy_repo.path / "serial.xml").stat().st_size
    assert size < 15_000, size  # was about 12 KB for this run before the shards' predictions joined
    doc = json.loads((toy_repo.path / "work_dirs" / "toy" / "metrics.json").read_text())
    toy = doc["projects"]["Toy"]
    assert toy["verification"]["passed"] == 2 and toy["verification"]["results"][0]["leaves"]
    assert toy["evaluation"]["backends"]["onnx"]["metrics"]["accuracy"] == pytest.approx(0.6)
    assert len(toy["latency"]["onnx"]["samples_ms"]) == 5
    _check_memory(doc, out.stdout.lines)


def test_test_ids_are_the_same_with_and_without_xdist(toy_repo):
    pytest.importorskip("xdist")
    for args in ((), SHARDED):  # one evaluation test per backend / two shards
        serial = _collected(toy_repo, *args)
        assert serial == _collected(toy_repo, "-n", "2", *args)
    assert "suites/test_evaluation.py::test_evaluation[Toy-chunk1of2]" in serial
    out = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-n", "2", "--junitxml=xdist.xml",
                                        "-k", "not latency", *SHARDED)
    assert out.ret == 0, out.stdout.str()[-3000:]
    ids, props = _junit(toy_repo.path / "xdist.xml")
    _check_small(props)
    assert ids == [i.replace("suites/", "suites.").replace(".py::", "::") for i in serial if "latency" not in i]
    doc = json.loads((toy_repo.path / "work_dirs" / "toy" / "metrics.json").read_text())
    assert doc["projects"]["Toy"]["evaluation"]["backends"]["onnx"]["metrics"]["accuracy"] == pytest.approx(0.6)
    assert doc["projects"]["Toy"]["verification"]["passed"] == 2
    _check_memory(doc, out.stdout.lines)


def _check_memory(doc: dict, lines: list[str]) -> None:
    """Item 7: each evaluated backend's peak RSS reaches the JSON (merged over shards) and
    the summary table's column."""
    from awml_harness.report.document import validate_document

    validate_document(doc)
    for name, entry in doc["projects"]["Toy"]["evaluation"]["backends"].items():
        mem = entry["memory"]
        assert 50 * 2**20 < mem["peak_rss_bytes"] < 8 * 2**30, (name, mem)
        assert 0 <= mem["peak_rss_increase_bytes"] <= mem["peak_rss_bytes"]
        row = next(line for line in lines if line.strip().startswith(name + " "))
        assert f"{mem['peak_rss_bytes'] / 2**20:.0f} (+{mem['peak_rss_increase_bytes'] / 2**20:.0f})" in row, row
    assert any("peak RSS MB" in line for line in lines)
