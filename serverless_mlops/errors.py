"""Domain exceptions, defined once.

Every error a user can cause derives from :class:`MlopsError`; the CLI prints its message on one line and the
HTTP handlers map each subclass to one status code.
"""

from __future__ import annotations

from typing import Any


class MlopsError(Exception):
    """Base class for every error this package raises on purpose."""


class SpecError(MlopsError):
    """A model spec (or its training data) is invalid; the message names the file and the field."""


class DataError(MlopsError):
    """Training or input data is unusable; the message names the file, the row and the column."""


class ParityError(MlopsError):
    """The ONNX model does not reproduce scikit-learn's predictions; nothing is packaged."""


class ArtifactIntegrityError(MlopsError):
    """Downloaded bytes do not match the sha256 the registry recorded; nothing is loaded."""


class NotFoundError(MlopsError):
    """A model, version, alias or artifact does not exist."""


class ConflictError(MlopsError):
    """An optimistic-concurrency check failed (the alias moved since the caller read it)."""

    def __init__(self, message: str, *, current_revision: int | None = None) -> None:
        super().__init__(message)
        self.current_revision = current_revision


class ReleaseInProgressError(ConflictError):
    """A release holds the alias's canary: only that release may move the alias or its canary (``release_id``)."""

    def __init__(self, message: str, *, release_id: str, current_revision: int | None = None) -> None:
        super().__init__(message, current_revision=current_revision)
        self.release_id = release_id


class RegistryError(MlopsError):
    """The registry refused an operation for a reason other than a conflict (e.g. an archived version)."""


class InvalidInputError(MlopsError):
    """Prediction input is invalid; ``details`` lists each problem as {"row", "field", "problem"}."""

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None, code: str = "invalid_input") -> None:
        super().__init__(message)
        self.details = details or []
        self.code = code
