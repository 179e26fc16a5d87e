"""The CDK app that provisions serverless-mlops (see infra/app.py)."""
