"""Where models live: the artifact store in S3 (``artifacts``: content-addressed, sha256-verified), the registry in
DynamoDB (``registry``: versions, aliases, lineage), the operations that span both (``lifecycle``: register a run, load
what serves) and the format of captured inference data that serving writes and drift reads (``capture_format``).

Imports the root modules and ``model``; never ``serving``, ``drift``, ``retraining``, ``local`` or ``cli``.
"""
