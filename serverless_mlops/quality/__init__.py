"""Model quality in production: ground truth (labels reported late, by prediction id) joined to captured predictions,
realized and estimated performance per model version, alerts on quality.

Nothing here imports scipy, pandas or scikit-learn: the quality check and the labels route run on the inference and
monitoring layers (numpy, boto3, pydantic).

Imports the root modules, ``model`` (the spec, the signature), ``store`` (the capture format, the registry, the
artifact store) and ``drift`` (the capture reader, alerts); never ``serving`` (the endpoint knows nothing of labels),
``retraining`` (the layer above), ``local`` or ``cli``.
"""
