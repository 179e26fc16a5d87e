"""serverless-mlops: scikit-learn models from a spec file to a monitored, self-retraining endpoint on AWS Lambda."""

__version__ = "0.1.0"
