"""A located problem in a pipeline file: what the user sees on the commit, in the log and in `odinctl validate`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One thing wrong with a file, pointing at the YAML node (1-based line and column, like compilers print).

    `file` is the path as the user knows it (repository-relative at a commit, or as given on the command line).
    """

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Problem:
        return cls(file=data["file"], line=int(data["line"]), column=int(data["column"]), message=data["message"])


class PipelineInvalid(Exception):
    """Raised where a caller needs a valid pipeline and got problems instead; carries them all."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems) or "invalid pipeline")
