"""Does a deployed spec need a new model? The model gate's decision (``mlops retrain-if-changed``, the step a deploy
pipeline runs after each stage).

The production version records the spec it was trained from (``ModelVersion.spec``). A deployed spec needs a new model
when what the fitted model depends on differs from that: the task, the target, the features (names, types, ranges,
categories), the estimator and its parameters, the train/holdout split, and the data's format. What only changes how a
model is watched or judged does not: ``description``, ``drift`` (thresholds, schedule, window), ``evaluation`` (the
gate's metric, floor, approval; the next retraining applies them) and ``retraining`` (the schedule).
The data's location is not compared: a version the workflow trained records the snapshot it trained on
(``snapshots/{model}/{sha256}.csv``: the published data plus feedback), never the published file's name, so new data
(a new file, or new rows in the same one) is not a spec change: start ``mlops retrain`` for it, or let the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from serverless_mlops.model.spec import ModelSpec

# the fields of a spec the fitted model depends on, in the order a change is reported
MODEL_FIELDS = ("task", "target", "features", "estimator", "split", "data")


@dataclass(frozen=True)
class Decision:
    """Whether ``model`` retrains, and why (one clause)."""

    model: str
    retrain: bool
    reason: str


def _fields(spec: ModelSpec) -> dict[str, Any]:
    document = spec.model_dump(mode="json", by_alias=True)
    fields = {name: document[name] for name in MODEL_FIELDS}
    fields["data"] = {"format": spec.data.resolved_format}  # not the location (the module's docstring)
    return fields


def changed_fields(trained_from: dict[str, Any], deployed: ModelSpec) -> list[str]:
    """The model fields (``estimator.params``, ``features``, ...) on which ``deployed`` differs from the spec a
    version was trained from (a dump of a :class:`ModelSpec`)."""
    before = _fields(ModelSpec.model_validate(trained_from))
    after = _fields(deployed)
    changed = []
    for name in MODEL_FIELDS:
        if before[name] == after[name]:
            continue
        if isinstance(before[name], dict) and isinstance(after[name], dict):
            keys = sorted(k for k in before[name].keys() | after[name].keys() if before[name].get(k) != after[name].get(k))
            changed += [f"{name}.{key}" for key in keys]
        else:
            changed.append(name)
    return changed


def decide(model: str, deployed: ModelSpec, production_spec: dict[str, Any] | None) -> Decision:
    """Retrain ``model`` when nothing is in production, when the production version's spec is unknown or no longer
    valid, or when a model field changed; otherwise not (a drift-only or evaluation-only change)."""
    if production_spec is None:
        return Decision(model, True, "nothing in production")
    if not production_spec:
        return Decision(model, True, "the production version records no spec to compare with")
    try:
        changed = changed_fields(production_spec, deployed)
    except ValidationError as exc:
        count = exc.error_count()
        return Decision(model, True, f"the spec production was trained from is no longer valid ({count} problem{'s' * (count != 1)})")
    if changed:
        return Decision(model, True, f"the spec changed what the model is trained from: {', '.join(changed)}")
    return Decision(model, False, "no model field changed (drift, evaluation and description apply without a new model)")
