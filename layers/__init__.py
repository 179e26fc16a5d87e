"""The Lambda layers' build tooling: requirements per layer, locks (``lock``, ``lockfile``), the build without docker
(``build``, ``elf``, ``rules``) and the newest/lowest-release check (``check_latest``).

Imports none of the project's other packages; ``infra`` imports it to build the layers it deploys.
"""
