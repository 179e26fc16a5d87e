"""The laptop stand-in for AWS, apart from everything that runs on Lambda: what lets the deployed stack run on one
machine with no AWS account and no docker.

- ``moto``: the embedded moto server, and moto made to behave as AWS where the loop depends on it;
- ``assembly``: the cloud assembly local mode deploys (synthesized in-process, or a fresh one reused) and its assets;
- ``template``: the synthesized template's intrinsic functions resolved, and the order its resources are created in;
- ``provisioner``: what the synthesized template names, created in moto;
- ``lambda_runtime``: the in-process Lambda runtime (moto's invoke runs the project's handlers, with fault injection);
- ``deployment``: the three together: a moto server, the template provisioned into it, the runtime installed;
- ``environment``: the whole stack on one machine for ``mlops local`` and the end-to-end tests;
- ``http_api``: the HTTP API stand-in in front of a Lambda handler (``mlops serve``);
- ``demo``: the ``make demo`` tour.

Nothing deployed imports this package. It may import everything below it (the domain, ``functions``, ``infra``);
only ``cli`` sits above it, and nothing here imports ``cli`` (the demo's tour takes what it does through the CLI as
a parameter).
"""
