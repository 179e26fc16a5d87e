"""Which training layer the retraining function gets: the training layer, or the training layer plus the optional
group of the estimator family the deployed specs name (LightGBM, XGBoost; layers/rules.py ``EXTENDS``).

A family layer that does not fit Lambda's 250 MiB (with the training function's code) is refused here, at synth, with
one line naming the model, the size and the way out: a Train step of its own (docs/deploying.md, "Swapping the Train
step"), where the family trains outside Lambda and the training function keeps the plain training layer (PrepareData
and Evaluate read the ONNX model, not the estimator).
"""

from __future__ import annotations

from infra.config import ConfigError, Deployment
from layers.build import build_layer, unzipped_size
from layers.rules import LAMBDA_UNZIPPED_LIMIT
from serverless_mlops.model.families import SKLEARN, family_of
from serverless_mlops.model.spec import ModelSpec

# room for the training function's own code (0.3 MB today; SIZE_BUDGET keeps the same 1 MB for it)
FUNCTION_CODE_BYTES = 10**6


def training_layer_group(deployment: Deployment, *, custom_train_step: bool = False) -> str:
    """The layer (a layers/build.py name) the training function needs for ``deployment``'s specs."""
    if custom_train_step:
        return "training"
    wanted: dict[str, tuple[int, ModelSpec]] = {}
    for index, spec in enumerate(deployment.specs):
        family = family_of(spec.estimator.class_)
        if family is not None and family is not SKLEARN:
            wanted.setdefault(family.group, (index, spec))
    if not wanted:
        return "training"
    if len(wanted) > 1:
        named = ", ".join(f"models[{index}] ({spec.name}: {spec.estimator.class_})" for index, spec in wanted.values())
        raise ConfigError(
            f"{deployment.source}: {named} need two estimator families' groups in one training function; deploy them apart, "
            "or train one through a Train step of its own (docs/deploying.md, 'Swapping the Train step')"
        )
    group, (index, spec) = next(iter(wanted.items()))
    name = f"training-{group}"
    size = unzipped_size(build_layer(name) / "python") + FUNCTION_CODE_BYTES
    if size > LAMBDA_UNZIPPED_LIMIT:
        raise ConfigError(
            f"{deployment.source}: models[{index}] ({spec.name}): {spec.estimator.class_} needs the training layer plus [{group}], "
            f"{size / 1e6:.1f} MB unzipped with the training function's code, more than Lambda's {LAMBDA_UNZIPPED_LIMIT / 1e6:.1f} MB "
            "(250 MiB): train it through a Train step of its own (docs/deploying.md, 'Swapping the Train step')"
        )
    return name
