"""Drift checks: numpy statistics, the check over a baseline profile, captured-data reading, reports and alerts.

Nothing here imports scipy, pandas or scikit-learn: the drift-check Lambda needs numpy, boto3 and pydantic only.

Imports the root modules, ``model`` (the spec and the baseline profile) and ``store`` (the capture format, the
registry); never ``serving``, ``local`` or ``cli``. One reasoned exception: when drift starts the retraining workflow
(``alerts.start_retraining``) it names and starts the execution as every retraining start does, lazily through
``retraining.control``.
"""
