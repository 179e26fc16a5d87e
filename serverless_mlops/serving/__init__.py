"""How a model serves, in the inference Lambda: the ONNX model and input validation (``onnx_model``), the endpoint
service (``endpoint``) with its settings (``endpoint_settings``), the HTTP API's request and response models
(``api_models``), turning an HTTP request into them (``request_parsing``) and V2 tensors into rows (``v2_tensors``),
the per-environment model cache with alias refresh and back-off (``model_cache``) and the buffered capture writer
(``capture_writer``).

Imports the root modules, ``model`` (spec, signature, profile only) and ``store``; never scikit-learn, scipy, pandas or
pickle (the inference layer has none), and never ``drift``, ``retraining``, ``local`` or ``cli``.
"""
