"""Batch scoring: a table of any size scored by a pinned model version on Step Functions' Distributed Map.

Prepare (:mod:`~serverless_mlops.batch.prepare`) resolves the alias once, pins the version and splits the input
objects into shards of bounded bytes, written as a JSON manifest; Score (:mod:`~serverless_mlops.batch.score`) streams
one shard through the serving code (the same validation and ONNX model the HTTP endpoint uses) and writes its output
object and refused rows; Finalize (:mod:`~serverless_mlops.batch.finalize`) writes the ``_SUCCESS`` manifest. The
names they share are in :mod:`~serverless_mlops.batch.contract`, which is how ``infra`` and ``functions`` meet.

Imports the root modules, ``model``, ``store`` and ``serving`` (numpy, onnxruntime, msgspec and pydantic: the Score
function runs on the inference layer); never scikit-learn, pandas, ``local`` or ``cli``.
"""
