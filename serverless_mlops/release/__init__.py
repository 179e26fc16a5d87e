"""Safe release of a model version: canary and linear rollouts through the production alias's canary, watched by
guard metrics, promoted or rolled back by themselves (docs/releasing.md). The strategies and thresholds are the spec's
``release:`` section (serverless_mlops/model/release_spec.py).

Runs on the inference layer: no scipy, pandas or scikit-learn (the binomial tests are exact sums in ``math``).

Imports the root modules, ``model`` (the release section), ``store`` (the registry) and ``serving`` (the guard
metrics' names); never ``retraining`` (the layer above: its Promote hands a version over to
:func:`serverless_mlops.release.control.start_release`), ``local`` or ``cli``.
"""
