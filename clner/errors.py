"""The library's exceptions, in one place: every module raises these, and the commands turn the user errors among
them into one ``error:`` line and exit status 2 (`clner.cli.run_cli`)."""

from __future__ import annotations

from typing import Any


class CLNERFormatError(ValueError):
    """Malformed input; the message starts with ``<file>:<line>:`` (or ``<file>: record N:``)."""

    def __init__(self, path: Any, line: int | None, message: str, *, record: int | None = None):
        self.path = str(path)
        self.line = line
        self.record = record
        where = self.path
        if line is not None:
            where += f":{line}"
        if record is not None:
            where += f": record {record}"
        super().__init__(f"{where}: {message}")


class CLNERUsageError(ValueError):
    """A user mistake (a flag, a file, the data) found by a check: the CLIs report it as one paragraph, exit code 2."""


class TrainingDivergedError(FloatingPointError):
    """Training produced a non-finite loss (or weights): the run stops before a broken model is saved."""


class HubError(RuntimeError):
    """The Hub could not be reached, or refused the repository or the upload; the message says what to do."""


class RetrievalError(RuntimeError):
    """Retrieval cannot go on (bad input, a backend that keeps failing, an unusable corpus)."""


class NetworkUnavailableError(RetrievalError):
    """A network backend was asked for but its host cannot be reached."""


class RetryableError(RetrievalError):
    """Raise from a backend for transient failures (rate limit, timeout): the query is retried with backoff."""


class RetrievalConfigError(ValueError):
    """A `RetrievalConfig` setting out of range; `field` names it (`clner-retrieve` reports it as `--field`)."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"RetrievalConfig.{field} {reason}")
        self.field, self.reason = field, reason


class SearchTimeoutError(RetrievalError):
    """A search call gave no answer within `RetrievalConfig.search_timeout` seconds: the query is recorded as a
    failure and not retried (the hung call still holds its thread, and each retry would wait as long again)."""
