"""One error type for every config mistake, shaped for a one-line-per-mistake CI log."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class IgnoredConfigKey(UserWarning):
    """A config key (deploy config or model config) accepted for compatibility that has
    no effect here, and why. config.seed re-exports it under its old home."""


class ConfigError(ValueError):
    """A config value the harness cannot use.

    `key` is the dotted path from the config root (`evaluation.backends.onnx.device`),
    `value` what was given, `allowed` a short phrase of what would be accepted. A config
    with several mistakes raises one ConfigError whose `problems` holds one per mistake
    (`combine`), so one run names them all; `problems` is empty for a single mistake.
    """

    def __init__(self, key: str, value: Any, allowed: str, *, source: str | None = None,
                 problems: Sequence[ConfigError] = ()) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        self.source = source
        self.problems = tuple(problems)
        super().__init__(self._render())

    @classmethod
    def combine(cls, problems: Sequence[ConfigError]) -> ConfigError:
        """One error for every mistake found: the mistake itself when there is one."""
        if not problems:
            raise ValueError("ConfigError.combine needs at least one problem")
        if len(problems) == 1:
            return problems[0]
        return cls(", ".join(p.key for p in problems), [p.value for p in problems],
                   f"{len(problems)} fixes, listed above", problems=problems)

    def _one(self) -> str:
        shown = repr(self.value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        key = self.key if self.key.isprintable() else self.key.encode("unicode_escape").decode()
        return f"config key '{key}' = {shown} is invalid; expected {self.allowed}"

    def _render(self) -> str:
        where = f"{self.source}: " if self.source else ""
        if not self.problems:
            return where + self._one()
        lines = "".join(f"\n  - {p._one()}" for p in self.problems)
        return f"{where}config has {len(self.problems)} mistakes:{lines}"

    def with_source(self, source: str) -> ConfigError:
        return ConfigError(self.key, self.value, self.allowed, source=source, problems=self.problems)
