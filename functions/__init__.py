"""Lambda handlers, one package per function (see README.md); the CDK app ships this package with the library."""
