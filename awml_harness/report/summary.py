"""The end-of-run table: one per project, one row per backend, from the metrics JSON
itself, so the terminal and the file can never disagree."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any, spec: str = ".4f") -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)


def rows_for(entry: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    ev = entry["evaluation"]["backends"]
    lat = entry["latency"]
    headline = next((b.get("headline") for b in ev.values() if b.get("headline")), None) or "metric"
    from awml_harness.report.format import metric_label

    header = ["backend", "device", "precision", metric_label(headline, entry["evaluation"].get("directions")), "delta", "p50 ms", "p95 ms", "p95/p50",
              "outliers", "peak RSS MB", "verified", "artifacts"]
    names = list(dict.fromkeys([*ev, *lat]))
    results = entry["verification"]["results"]
    reused = [a["reused"] for a in entry.get("artifacts", [])]
    art = f"{sum(reused)}/{len(reused)} reused" if reused else "-"
    rows = []
    for name in names:
        e, lt = ev.get(name, {}), lat.get(name, {})
        device = e.get("device") or lt.get("device") or "-"
        precision = e.get("precision") or lt.get("precision") or "-"
        label = f"{name.split('-')[0]}{'' if precision in ('fp32', '-') else '-' + precision}:{device}"
        mine = [r for r in results if r["test"] == label]
        verified = f"{sum(r['passed'] for r in mine)}/{len(mine)}" if mine else "-"
        metrics = e.get("metrics") or {}
        delta = (e.get("deltas") or {}).get(headline)
        status = e.get("status")
        value = _fmt(metrics.get(headline)) if status in (None, "ok", "no-reference") else status
        rows.append([name, device, precision, value, _fmt(delta, "+.4f"),
                     _fmt(lt.get("p50"), ".3f"), _fmt(lt.get("p95"), ".3f"), *_spread_cells(lt),
                     memory_cell(e.get("memory")), verified, art])
    return header, rows


def memory_cell(mem: dict[str, Any] | None) -> str:
    """Peak RSS while the backend ran (its own increase in brackets), and the CUDA peak of
    torch's allocator on GPU backends: `812 (+35)`, `1290 (+410), cuda 733`."""
    if not mem or "peak_rss_bytes" not in mem:
        return "-"
    cell = f"{mem['peak_rss_bytes'] / 2**20:.0f}"
    if "peak_rss_increase_bytes" in mem:
        cell += f" (+{mem['peak_rss_increase_bytes'] / 2**20:.0f})"
    if "cuda_peak_allocated_bytes" in mem:
        cell += f", cuda {mem['cuda_peak_allocated_bytes'] / 2**20:.0f}"
    return cell


def _spread_cells(lt: dict[str, Any]) -> list[str]:
    """p95/p50 and outlier share, a trailing '!' when the test warned that they are high."""
    if "outlier_share" not in lt:
        return ["-", "-"]
    mark = " !" if lt.get("spread_warning") else ""
    return [_fmt(lt.get("p95_over_p50"), ".2f") + mark, f"{100 * lt['outlier_share']:.0f} %{mark}"]


def spread_notes(entry: dict[str, Any]) -> list[str]:
    return [f"  latency {name}: {lt['spread_warning']}" for name, lt in entry.get("latency", {}).items()
            if lt.get("spread_warning")]


def threads_line(doc: dict[str, Any], cid: str) -> str | None:
    policy = (doc.get("run", {}).get("threads") or {}).get("policy", {}).get(cid)
    if not policy:
        return None
    intra = policy["intra_op"] or "library default"
    return f"  threads: intra-op {intra}, inter-op {policy['inter_op'] or 'library default'} ({policy['source']})"


def profile_cell(cell: dict[str, Any] | None) -> str:
    """`0.456 4.5% fp32`; a node that did not run on its own: `fused`, `grouped`, `folded`, `absent`."""
    if not cell:
        return "-"
    if cell.get("status") not in ("timed", None):
        return str(cell["status"])
    return f"{cell.get('ms', 0.0):.3f} {100 * (cell.get('share') or 0.0):.1f}% {cell.get('precision') or '-'}"


def profile_lines(profile: dict[str, Any] | None) -> list[str]:
    """--awml-profile: the top nodes across backends, and how much of each graph the profile covers."""
    if not profile:
        return []
    from awml_harness.profile.join import short_node, top_rows

    rows = top_rows(profile)
    names = list(profile.get("backends", {}))
    graphs = {r["graph"] for r in profile.get("nodes", [])}
    lines = [f"  profile: top {len(rows)} of {len(profile.get('nodes', []))} nodes (ms per round, share of its graph, "
             "precision it ran in)"]
    table = [["node", "op", *names]]
    for r in rows:
        node = short_node(r["node"]) if len(graphs) == 1 else f"{r['graph']}:{short_node(r['node'], 40)}"
        table.append([node, r["op_type"], *(profile_cell(r["backends"].get(n)) for n in names)])
    widths = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
    lines += ["    " + "  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)).rstrip() for t in table]
    cover = []
    for name, meta in profile.get("backends", {}).items():
        ratios = [g.get("coverage") for g in meta.get("graphs", {}).values() if g.get("coverage") is not None]
        if ratios:
            cover.append(f"{name} {'/'.join(f'{c:.2f}' for c in ratios)}")
    if cover:
        lines.append("    profiled total / unprofiled graph time: " + ", ".join(cover))
    return lines


def render_summary(doc: dict[str, Any]) -> list[str]:
    lines = []
    for cid, entry in doc.get("projects", {}).items():
        header, rows = rows_for(entry)
        lines.append(f"awml {cid} ({entry['task_type']}, export {entry['export_mode']})")
        if rows:
            widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
            lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)))
            for r in rows:
                lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)))
        lines += spread_notes(entry)
        if entry.get("latency"):
            line = threads_line(doc, cid)
            if line:
                lines.append(line)
        ver = entry["verification"]
        if ver["passed"] + ver["failed"]:
            lines.append(f"  verification: {ver['passed']}/{ver['passed'] + ver['failed']} passed")
        if ver.get("status") == "unverified":
            lines.append(f"  UNVERIFIED: no deployed artifact was compared with a reference in this run ({ver.get('reason')})")
        lines += profile_lines(entry.get("profile"))
        for art in entry.get("artifacts", []):
            how = "reused from cache" if art["reused"] else f"built in {art['build_seconds']:.2f} s"
            lines.append(f"  artifact {art['name']} ({art.get('variant', '')}, {art['size_bytes'] / 1e6:.2f} MB): {how}")
    return lines
