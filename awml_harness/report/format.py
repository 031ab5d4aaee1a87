"""Numbers as a reader wants them: units attached, sensible digits, "not recorded" for a
value an older document lacks. Shared by the HTML report and the markdown summary."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MISSING = "not recorded"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def ms(value: Any) -> str:
    """Milliseconds with three significant digits (12.3 ms, 1.48 ms, 0.0521 ms)."""
    v = _num(value)
    if v is None:
        return MISSING if value is None else str(value)
    if v == 0:
        return "0 ms"
    if abs(v) >= 100:
        return f"{v:.0f} ms"
    return f"{v:.3g} ms" if abs(v) >= 1e-3 else f"{v:.2e} ms"


def seconds(value: Any) -> str:
    v = _num(value)
    if v is None:
        return MISSING
    return f"{v:.1f} s" if v >= 10 else f"{v:.2f} s"


def mb(size_bytes: Any) -> str:
    """Sizes in MB (10^6 bytes), two decimals; small files keep three significant digits."""
    v = _num(size_bytes)
    if v is None:
        return MISSING
    m = v / 1e6
    return f"{m:.2f} MB" if m >= 0.01 or m == 0 else f"{m:.3g} MB"


def pct(share: Any, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage."""
    v = _num(share)
    return MISSING if v is None else f"{100 * v:.{digits}f} %"


def metric(value: Any) -> str:
    """A task metric: four decimals for values of order one, else four significant digits."""
    v = _num(value)
    if v is None:
        return MISSING if value is None else str(value)
    if isinstance(value, int):  # a count (num_samples): floats keep their decimals, 1.0 reads 1.0000
        return str(value)
    if v == 0:
        return "0.0000"
    return f"{v:.4f}" if 1e-3 <= abs(v) < 1e4 else f"{v:.4g}"


def delta(value: Any) -> str:
    v = _num(value)
    if v is None:
        return MISSING if value is None else str(value)
    return f"{v:+.4f}" if v == 0 or 1e-3 <= abs(v) < 1e4 else f"{v:+.3g}"


def diff(value: Any) -> str:
    """An element difference or tolerance: three significant digits, scientific when small."""
    v = _num(value)
    if v is None:
        return "-" if value is None else str(value)
    if v == 0:
        return "0"
    return f"{v:.3g}" if 1e-3 <= abs(v) < 1e4 else f"{v:.2e}"


def short_commit(git: Any) -> str:
    if git is None:
        return "none (not a git checkout)"
    if not isinstance(git, dict) or not git.get("commit"):
        return MISSING
    text = str(git["commit"])[:12]
    if git.get("branch"):
        text += f" ({git['branch']})"
    if git.get("dirty"):
        text += ", uncommitted changes"
    return text


#: how the reports mark a metric's direction (evaluation.directions)
DIRECTION_MARKS = {"higher": "↑", "lower": "↓", "none": "(count)", "undeclared": "(↕ direction undeclared)"}
DIRECTION_WORDS = {"higher": "higher is better", "lower": "lower is better", "none": "a count, not gated",
                   "undeclared": "direction undeclared: gated both ways"}


def metric_label(name: str, directions: dict[str, str] | None) -> str:
    """`mAP ↑`, `AbsRel ↓`; a document without directions (schema 1) shows the bare name."""
    direction = (directions or {}).get(name)
    return f"{name} {DIRECTION_MARKS[direction]}" if direction in DIRECTION_MARKS else name


def gate_text(evaluation: dict[str, Any], name: str, tolerance: Any = None) -> tuple[str, bool | None]:
    """(allowed text, passed) of one metric exactly as the run's gate recorded it
    (`evaluation.backends.<name>.gate`); nothing is judged here. A schema-1 document has
    no per-metric record: its tolerance is shown and the outcome left open."""
    check = (evaluation.get("gate") or {}).get(name)
    if check is not None:
        if not check.get("gated"):
            return "not gated", None
        allowed = check.get("allowed")
        amount = "-" if allowed is None else metric(allowed)
        text = f"allowed {amount} worse" if check.get("one_sided") else f"allowed ±{amount}"
        rule = check.get("rule") or ""
        if "rtol" in rule:
            text += f" ({rule})"
        return text, bool(check.get("passed"))
    if isinstance(tolerance, dict):  # schema 2 tolerances table without a gate record
        return f"allowed ±{metric(tolerance.get('allowed'))}", None
    if isinstance(tolerance, (int, float)):
        return f"allowed ±{metric(tolerance)}", None
    return ("not gated", None) if evaluation.get("gate") is not None or tolerance is None else (MISSING, None)



@dataclass(frozen=True)
class BackendRow:
    """One backend of a project entry as every summary shows it (HTML, markdown): the
    headline metric's value, delta and allowed delta, latency and verification results."""

    name: str
    evaluation: dict[str, Any]
    latency: dict[str, Any]
    device: str
    precision: str
    value: str
    delta: float | None
    headline: str
    tolerances: dict[str, Any]  # every metric's recorded tolerance for this backend
    is_reference: bool
    verification: list[dict[str, Any]]

    def delta_text(self) -> str:
        """The headline delta with what the gate allowed: "+0.0100 (allowed ±0.0200)"."""
        if self.is_reference:
            return "reference"
        if self.delta is None:
            return "-"
        allowed, _ = gate_text(self.evaluation, self.headline, self.tolerances.get(self.headline))
        return delta(self.delta) + (f" ({allowed})" if allowed not in ("not gated", MISSING) else "")

    def failed_metrics(self) -> list[str]:
        """The metrics the run's gate failed (as recorded)."""
        return [m for m, c in (self.evaluation.get("gate") or {}).items() if c.get("gated") and not c.get("passed")]


def backend_rows(entry: dict[str, Any]) -> tuple[str, list[BackendRow]]:
    """(headline metric name, one row per backend that was evaluated or timed)."""
    ev = entry["evaluation"].get("backends", {})
    lat = entry.get("latency") or {}
    results = entry["verification"].get("results", [])
    headline = next((b.get("headline") for b in ev.values() if b.get("headline")), None) or "metric"
    tols = (entry.get("tolerances") or {}).get("metrics", {})
    rows = []
    for name in dict.fromkeys([*ev, *lat]):
        e, lt = ev.get(name, {}), lat.get(name, {})
        device = e.get("device") or lt.get("device") or "-"
        precision = e.get("precision") or lt.get("precision") or "-"
        status = e.get("status")
        if not e:
            value = "-"
        elif status in (None, "ok", "no-reference"):
            value = metric((e.get("metrics") or {}).get(headline))
        else:
            value = status
        label = f"{name.split('-')[0]}{'' if precision in ('fp32', '-') else '-' + precision}:{device}"
        rows.append(BackendRow(
            name=name, evaluation=e, latency=lt, device=device, precision=precision, value=value,
            delta=(e.get("deltas") or {}).get(headline), headline=headline, tolerances=tols.get(name, {}),
            is_reference=bool(e) and name == entry["evaluation"].get("reference"),
            verification=[r for r in results if r["test"] == label]))
    return headline, rows
