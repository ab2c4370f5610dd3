"""``pydarknet.convert``: models trained elsewhere as Darknet files.

    pydarknet.convert.onnx_to_darknet("resnet18.onnx", "out/resnet18")
    pydarknet.convert.caffe_to_darknet("deploy.prototxt", "model.caffemodel", "out/model")

Both write OUT.cfg, OUT.weights and OUT.json through one conversion core
(to_darknet.py) and return a Conversion; each module's ``verify`` compares with an
independent runtime (onnxruntime, OpenCV DNN).
"""

from .caffe_to_darknet import caffe_to_darknet
from .onnx_to_darknet import onnx_to_darknet

__all__ = ["caffe_to_darknet", "onnx_to_darknet"]
