"""Errors a user can meet, each with what went wrong, why, and the exact fix.

Every error carries the exit code DESIGN.md gives for its kind:
0 success; 1 a stage failed; 2 bad usage or input; 3 model artifact missing or corrupt;
4 an external tool (ffmpeg) failed; 130 interrupted.
"""

from __future__ import annotations


class FgbgError(Exception):
    """Base error: printed as `error:` / `cause:` / `hint:` lines, exits with `exit_code`."""

    exit_code = 1

    def __init__(self, what: str, cause: str | None = None, hint: str | None = None):
        super().__init__(what)
        self.what = what
        self.cause = cause
        self.hint = hint

    def lines(self) -> list[str]:
        out = [f"error: {self.what}"]
        if self.cause:
            out.append(f"cause: {self.cause}")
        if self.hint:
            out.append(f"hint: {self.hint}")
        return out


class StageError(FgbgError):
    """A stage failed while running (exit 1)."""

    exit_code = 1


class NonFiniteError(StageError):
    """A model produced NaN or infinity (exit 1): never written out as a (black) video."""


class InputError(FgbgError):
    """Bad usage or bad input: a missing file, an undecodable video, no person (exit 2)."""

    exit_code = 2


class ModelError(FgbgError):
    """A model artifact is missing or fails verification (exit 3)."""

    exit_code = 3


class ToolError(FgbgError):
    """An external tool (ffmpeg) failed or is missing (exit 4)."""

    exit_code = 4


class LockedError(InputError):
    """Another fgbg process holds the work directory (exit 2)."""


class Interrupted(FgbgError):
    """Ctrl-C or SIGTERM (exit 130)."""

    exit_code = 130
