"""Papers as packages: each sub-package holds one paper's data model, models, closed forms,
claims, presets and experiments, on top of simdyn's core (which imports no paper)."""
