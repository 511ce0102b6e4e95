"""Competition inference: the test set, a time budget, predictions and ``submission.csv``."""
