"""The stages of the default engine, one module each, in the order a fit runs them.

- :mod:`.scale`: each dataset's level and spread, standardized accuracies (and the numeric
  helpers every engine may share);
- :mod:`.lightfm`: LightFM on soft labels (the factorization, also the plain ``lightfm`` engine);
- :mod:`.kernel`: the learned dataset kernel (a profile from similar datasets);
- :mod:`.kriging`: the residual covariance across models and per-dataset kriging.

The stack that weighs the candidate profiles and the fit that chains the stages are in
:mod:`recsys.engines.hybrid`.
"""
