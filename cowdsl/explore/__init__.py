"""Exploring every interleaving of concurrent steps: the model, the searches,
and the verdicts."""
