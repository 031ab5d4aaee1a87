"""--awml-profile end to end on the toy project: test_profile per backend, the table in the
metrics JSON (schema), the summary, the HTML report, a Chrome trace per backend, and
`awml diff` naming a node that got slower."""

from __future__ import annotations

import copy
import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


def _doc(repo):
    return json.loads((repo.path / "work_dirs" / "toy" / "metrics.json").read_text())


def test_profile_is_opt_in_and_deselected_without_it(toy_repo):
    result = toy_repo.runpytest_subprocess("suites/test_profile.py", "-p", "no:cacheprovider")
    result.assert_outcomes()  # nothing ran, nothing skipped: the placeholder is deselected
    assert "1 deselected" in result.stdout.str()


def test_profile_run_joins_backends_by_onnx_node(toy_repo):
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "profile or latency",
                                           "--awml-profile", "--awml-report", "report.html")
    result.assert_outcomes(passed=4)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["*profile: top * of * nodes (ms per round, share of its graph, precision it ran in)",
                                 "*node*op*pytorch*onnx*", "*/0/Conv*Conv*fp32*fp32*",
                                 "*profiled total / unprofiled graph time: pytorch *, onnx *"])
    doc = _doc(toy_repo)
    profile = doc["projects"]["Toy"]["profile"]
    assert list(profile["backends"]) == ["pytorch", "onnx"]
    import onnx

    [art] = [a for a in doc["projects"]["Toy"]["artifacts"] if a.get("variant") == "fp32"]
    nodes = {n.name for n in onnx.load(art["path"], load_external_data=False).graph.node if n.op_type != "Constant"}
    assert {r["node"] for r in profile["nodes"]} == nodes
    for row in profile["nodes"]:
        assert set(row["backends"]) == {"pytorch", "onnx"}  # the same rows for every backend
    times = [r["backends"]["onnx"]["ms"] for r in profile["nodes"]]
    assert times == sorted(times, reverse=True) or profile["nodes"][0]["backends"]["pytorch"]["ms"] >= max(times)
    for name, b in profile["backends"].items():
        (graph,) = b["graphs"].values()
        assert graph["unprofiled_ms"] > 0 and graph["total_ms"] > 0
        trace = json.loads(open(b["trace"]).read())
        spans = [e for e in trace["traceEvents"] if e["ph"] == "X"]
        assert len({e["tid"] for e in spans}) == b["rounds"]
        assert {e["name"] for e in spans} <= nodes | {e["args"]["kernel"] for e in spans}
        assert trace["otherData"]["synthesized"] is (name == "pytorch")
    assert "awml profile traces" in out
    # the latency tests are not the profile's: their records are there as in any run
    assert set(doc["projects"]["Toy"]["latency"]) == {"pytorch", "onnx"}
    page = (toy_repo.path / "report.html").read_text()
    assert "<h3>Per-node profile" in page and 'alt="per-node profile' in page
    jsonschema = pytest.importorskip("jsonschema")
    from awml_harness.report.document import validate_document

    validate_document(doc)
    broken = copy.deepcopy(doc)
    broken["projects"]["Toy"]["profile"]["nodes"][0]["backends"]["onnx"]["status"] = "fast"
    with pytest.raises(jsonschema.ValidationError):
        validate_document(broken)


def test_awml_diff_names_the_node_whose_time_doubled(toy_repo, tmp_path, capsys):
    from awml_harness.cli import main

    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "profile", "--awml-profile")
    result.assert_outcomes(passed=2)
    doc = _doc(toy_repo)
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    assert main(["diff", str(old), str(old)]) == 0
    rows = doc["projects"]["Toy"]["profile"]["nodes"]
    big = next(r for r in rows if r["backends"]["onnx"]["share"] >= 0.05)
    slower = copy.deepcopy(doc)
    cell = next(r for r in slower["projects"]["Toy"]["profile"]["nodes"] if r["node"] == big["node"])["backends"]["onnx"]
    cell["ms"] *= 2
    cell["share"] *= 2
    new = tmp_path / "new.json"
    new.write_text(json.dumps(slower))
    capsys.readouterr()
    tiny = big["backends"]["onnx"]["ms"] < 0.01  # the toy's nodes take microseconds
    assert main(["diff", str(old), str(new)]) == (0 if tiny else 1)  # --node-min-ms 0.01 by default
    capsys.readouterr()
    assert main(["diff", str(old), str(new), "--node-min-ms", "0.001"]) == 1
    out = capsys.readouterr().out
    assert f"Toy onnx: node model:{big['node']} ({big['op_type']})" in out and "--node-increase" in out
    assert out.count("REGRESSION") == 1
    # a looser threshold lets it pass; a node too small to matter never flags
    assert main(["diff", str(old), str(new), "--node-min-ms", "0.001", "--node-increase", "1.5"]) == 0
    assert main(["diff", str(old), str(new), "--node-min-ms", "0.001", "--node-min-share", "5"]) == 0
    capsys.readouterr()
