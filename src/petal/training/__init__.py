"""Training: recipes, the Lightning module, batches, the cached-feature path, the LR range
test, cross-validation; `orchestrator.train_model` trains a model into a run folder."""
