"""The CDK app that provisions serverless-mlops (see infra/app.py): one construct per capability, composed into a stack.

Imports the domain (``serverless_mlops``, never its ``local`` or ``cli``) for the names and settings the deployed code
reads, and ``layers`` to build the Lambda layers; never ``functions`` (it ships that folder as code, and what both must
agree on lives in ``serverless_mlops.retraining.contract``).
"""
