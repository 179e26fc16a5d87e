"""The model a job scores with, loaded once per environment: the pinned version, verified by sha256."""

from __future__ import annotations

from serverless_mlops.serving.onnx_model import OnnxModel, load_model
from serverless_mlops.store.lifecycle import Backends


class PinnedModels:
    """``load(model, version)``: the registered version's ONNX model (one kept; a warm Score environment scores
    the next shard of the same job without loading it again)."""

    def __init__(self, backends: Backends) -> None:
        self.backends = backends
        self._loaded: tuple[str, int, OnnxModel] | None = None

    def load(self, model: str, version: int) -> OnnxModel:
        if self._loaded is not None and self._loaded[:2] == (model, version):
            return self._loaded[2]
        onnx = load_model(self.backends, self.backends.registry.describe(model, version))
        self._loaded = (model, version, onnx)
        return onnx
