"""The root of gslb's exception tree: every error a user can act on derives from GslbError."""

from __future__ import annotations

from dataclasses import dataclass


class GslbError(Exception):
    """Base of all gslb errors."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a configuration file, with where it is."""

    file: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.what}"


class ConfigError(GslbError):
    """A configuration file (zone, server or proxy YAML) is invalid; lists every problem found."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]):
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
