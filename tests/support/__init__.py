"""What the tests build their inputs with, also used by tools/ (fuzzing, benchmarks):
random Darknet weights, small Caffe models, the PyTorch-made ONNX fixtures."""
