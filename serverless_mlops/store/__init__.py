"""Where models live: the artifact store in S3 (``artifacts``: content-addressed, sha256-verified), the registry
(``registry``: its items — versions, aliases, lineage — and the ``Registry`` Protocol callers type against;
``dynamodb_registry`` on ``dynamodb_versions``: the one implementation, on DynamoDB), the operations that span both
(``lifecycle``: register a run, load what serves) and the format of captured inference data that serving writes and
drift reads (``capture_format``).

Imports the root modules and ``model``; never ``serving``, ``drift``, ``retraining``, ``local`` or ``cli``.
"""
