"""The lecture's machine learning: the MNIST files and splits, params, models and their files, optimizers, training,
evaluation."""
