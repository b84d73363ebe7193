"""mnist_dnn: the lecture "NN, DNN for MNIST" as a reproducible DVC pipeline."""

from mnist_dnn.stage import numerics

numerics.apply()  # before any module imports torch: every stage, test and the CLI import this package first
