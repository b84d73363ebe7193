"""mnist_dnn: the lecture "NN, DNN for MNIST" as a reproducible DVC pipeline."""
