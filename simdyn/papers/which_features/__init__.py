"""The first paper: Xue et al., ICML 2023, "Which Features are Learnt by Contrastive Learning?".

Its claims (:mod:`simdyn.papers.which_features.claims`) are what ``simdyn verify`` checks by
default (``--paper which-features``): one module per claim (``cc_train``, ``fs_dim``, ``joint``,
...), the shared helpers of those modules (``common``, ``instances``, ``runs``), the verifier's
reference and broken simulators (``simulators``) and the catch matrix of faults planted in the
source (``faults``). The paper's data model, closed forms and training representations are
simdyn's top-level modules (:mod:`simdyn.data`, :mod:`simdyn.theory`, :mod:`simdyn.objectives`),
which ``simdyn simulate`` runs; the claims run those same code paths.
"""
