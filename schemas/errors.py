"""The one error shape for schema violations and semantic checks alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Violation:
    path: str  # JSONPath of the offending member, e.g. "$.data.codes"; for `required`, the missing member
    value: Any  # the offending value (None when the member is missing)
    rule: str  # the JSON Schema keyword that failed, "unknown-code", or a semantic check's name
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} [{self.rule}]"


class ContractError(ValueError):
    """A frame or document that breaks the contract; the first violation is the most specific one."""

    def __init__(self, violations: list[Violation], schema: str | None = None) -> None:
        if not violations:
            raise ValueError("ContractError needs at least one violation")
        self.violations = violations
        self.schema = schema
        super().__init__(self._text())

    def _text(self) -> str:
        where = f" (schema {self.schema})" if self.schema else ""
        lines = [f"{self.violations[0]}{where}"]
        lines += [f"  also {v}" for v in self.violations[1:5]]
        if len(self.violations) > 5:
            lines.append(f"  ... and {len(self.violations) - 5} more")
        return "\n".join(lines)

    @property
    def path(self) -> str:
        return self.violations[0].path

    @property
    def value(self) -> Any:
        return self.violations[0].value

    @property
    def rule(self) -> str:
        return self.violations[0].rule

    @property
    def message(self) -> str:
        return self.violations[0].message
