"""The repository's example model specs (``models/*.yaml``), as the tests read them."""

from __future__ import annotations

from pathlib import Path

from serverless_mlops.model.spec import ModelSpec, load_spec

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
EXAMPLE_NAMES = ("breast-cancer", "wine", "diabetes")


def example_spec(name: str) -> ModelSpec:
    return load_spec(MODELS / f"{name}.yaml")
