"""Retraining: the steps of the Step Functions workflow (prepare → train → evaluate → gate → register → promote or
wait for approval → notify), what starts it, and how a person approves or rejects a candidate.

``contract`` holds the names the workflow's parts agree on (the CDK state machine in ``infra``, the handlers in
``functions``, the CLI): it is how ``infra`` and ``functions`` meet without importing each other.

Imports the root modules, ``model``, ``store``, ``serving`` and ``drift``; never ``local`` or ``cli``.
"""
