"""Drift checks: numpy statistics, the check over a baseline profile, captured-data reading, reports and alerts.

Nothing here imports scipy, pandas or scikit-learn: the drift-check Lambda needs numpy, boto3 and pydantic only.

Imports the root modules, ``model`` (the spec and the baseline profile) and ``store`` (the capture format, the
registry); never ``retraining`` (the layer above: when drift starts the workflow, the drift-check function hands
the service :func:`serverless_mlops.retraining.control.start_for_drift` as ``Notifier.retrain``), ``local`` or ``cli``.
"""
