"""The laptop stand-in for AWS, apart from everything that runs on Lambda: an embedded moto server (``moto``), the
provisioner that creates what a synthesized CDK template names and runs its Lambdas in-process (``stack``), the whole
stack on one machine for ``mlops local`` and the end-to-end tests (``environment``), a local HTTP API in front of a
Lambda handler (``http_api``) and the ``make demo`` tour (``demo``).

Nothing deployed imports this package. It may import everything below it (the domain, ``functions``, ``infra``);
only ``cli`` sits above it.
"""
