"""serverless-mlops: scikit-learn models from a spec file to a monitored, self-retraining endpoint on AWS Lambda.

The subpackages, bottom up; each may import the ones below it, never one above (tests/unit/test_layering.py keeps this
true): the root modules ``errors``, ``settings`` and ``aws``; ``model``; ``store``; ``serving``; ``drift``;
``retraining``; then, outside this package, ``functions`` (the Lambda handlers) and ``infra`` (the CDK app), which
import the domain and not each other; then ``local`` (the laptop stand-in for AWS) and ``cli`` at the top.
"""

__version__ = "0.1.0"
