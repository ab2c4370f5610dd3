"""The runtime on the compiled extension: networks, devices, images, class names,
Python-defined layers, detection and classification, the model zoo, sample files."""
