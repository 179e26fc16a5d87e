"""What a deployment costs a month: a committed price table (:mod:`~serverless_mlops.cost.prices`), usage times prices
line by line (:mod:`~serverless_mlops.cost.estimate`), and a deployed function's real request count and duration from
CloudWatch (:mod:`~serverless_mlops.cost.cloudwatch`). ``mlops cost estimate`` prints it."""
