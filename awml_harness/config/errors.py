"""One error type for every config mistake, shaped for a one-line CI log message."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A config value the harness cannot use.

    `key` is the dotted path from the config root (`evaluation.backends.onnx.device`),
    `value` what was given, `allowed` a short phrase of what would be accepted.
    """

    def __init__(self, key: str, value: Any, allowed: str, *, source: str | None = None) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        shown = repr(self.value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        where = f"{self.source}: " if self.source else ""
        key = self.key if self.key.isprintable() else self.key.encode("unicode_escape").decode()
        return f"{where}config key '{key}' = {shown} is invalid; expected {self.allowed}"

    def with_source(self, source: str) -> ConfigError:
        return ConfigError(self.key, self.value, self.allowed, source=source)
