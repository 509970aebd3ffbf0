"""simdyn's internal modules: private by name, not part of the public API.

Import public names from :mod:`simdyn` (``simdyn.__all__``) or its public modules
(``simdyn.PUBLIC_MODULES``); anything here may change without notice.
"""
