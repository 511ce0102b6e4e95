"""Training and evaluation of classifiers: devices, checkpoints, tracking, train, evaluate."""
