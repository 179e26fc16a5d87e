"""Lambda handlers, one package per function (see functions/README.md); the CDK app ships this package with the library.

Each handler parses its event, calls the library and shapes the response; ``observability`` creates the Logger, Tracer
and Metrics they share. Imports the domain (``serverless_mlops``, never its ``local`` or ``cli``) and powertools; never
``infra`` (what both must agree on lives in ``serverless_mlops.retraining.contract``).
"""
