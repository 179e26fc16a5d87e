"""What a deployment costs a month: a committed price table (:mod:`~serverless_mlops.cost.prices`), a model's month of
usage (:mod:`~serverless_mlops.cost.usage`), usage times prices line by line (:mod:`~serverless_mlops.cost.estimate`),
and a deployed function's real request count and duration from CloudWatch (:mod:`~serverless_mlops.cost.cloudwatch`).
``mlops cost estimate`` prints it.

Imports ``errors`` and pydantic/PyYAML only (the CloudWatch and Lambda clients are passed in); nothing on the Lambda
path imports it, and it never imports ``local`` or ``cli``.
"""
