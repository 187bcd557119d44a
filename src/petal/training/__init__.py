"""Training: recipes, the Lightning module, batches, the cached-feature path, the LR range
test, cross-validation; `fit` writes a run folder."""
