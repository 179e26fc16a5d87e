"""The HTTP inference Lambda (handler: ``functions.inference.app.lambda_handler``).

``app`` composes the API and wraps it in the standard decorator stack; ``routes_v1`` (this project's predict),
``routes_v2`` (Open Inference Protocol) and ``routes_labels`` (ground truth, issue 18) are powertools Routers whose
routes each call one library function;
``error_map`` turns every exception into the one error shape and status; ``telemetry`` holds the function's logger,
metrics and what it counts. Parsing requests, V2 tensors and every decision are the endpoint's
(``serverless_mlops.serving``).
"""
