"""The runtime on the compiled extension: networks, devices, images, class names,
Python-defined layers, drawing, the typed results, sample files."""
