"""Drift checks: numpy statistics, the check over a baseline profile, captured-data reading, reports and alerts.

Nothing here imports scipy, pandas or scikit-learn: the drift-check Lambda needs numpy, boto3 and pydantic only.
"""
