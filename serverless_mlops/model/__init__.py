"""What a model is: the spec (``spec``), its training data (``data``), fitting it and packaging it as verified ONNX
(``fit``: pipeline → holdout metrics → ONNX → parity → profile), its signature (``signature``), its baseline profile
(``profile``) and the example data sets behind ``models/*.yaml`` (``examples``).

The bottom of the loop: imports only the root modules (``errors``, ``settings``, ``aws``). ``fit`` and ``data`` need
the training stack (scikit-learn, skl2onnx, pandas) and run where training runs; ``spec``, ``signature`` and
``profile`` are read by the inference and drift functions too, so they import none of it.
"""
