"""Write the ONNX fixtures of tests/onnx/: small PyTorch CNNs of the shapes people
deploy, exported by torch.onnx at several opsets: by the TorchScript exporter, which
emits the Shape/Gather chains and Sigmoid+Mul that older exports have, and by the
dynamo exporter, torch.onnx's default since PyTorch 2.9 (ReduceMean for adaptive
pooling, BatchNorm already folded, opset 18 and up).

    python -m venv /tmp/torch && /tmp/torch/bin/pip install torch onnx numpy
    /tmp/torch/bin/python tests/support/make_onnx_fixtures.py tests/onnx

Weights and BatchNorm statistics are random (seeded), so folding has real work to do;
the tests compare the converted models with onnxruntime, not with these modules.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn


def bn(channels: int) -> nn.BatchNorm2d:
    layer = nn.BatchNorm2d(channels)
    with torch.no_grad():  # trained-looking statistics, so that folding changes the weights
        layer.running_mean.uniform_(-0.5, 0.5)
        layer.running_var.uniform_(0.5, 2.0)
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.uniform_(-0.2, 0.2)
    return layer


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock."""

    def __init__(self, inputs: int, outputs: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = bn(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = bn(outputs)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inputs != outputs:
            self.downsample = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), bn(outputs))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18(nn.Module):
    """torchvision's resnet18 layout (7x7 stem, 3x3 max pool, 4 x 2 BasicBlocks, global
    average pool, flatten, fc) at a sixteenth of its widths."""

    def __init__(self, widths=(4, 8, 16, 32), classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = bn(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        blocks, inputs = [], widths[0]
        for i, width in enumerate(widths):
            blocks += [BasicBlock(inputs, width, 1 if i == 0 else 2), BasicBlock(width, width, 1)]
            inputs = width
        self.layers = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inputs, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.avgpool(self.layers(x)), 1))


class VGGStyle(nn.Module):
    """Convolutions, ceil-mode max pooling, x.view(x.size(0), -1) (a Shape/Gather/
    Concat/Reshape chain), Linear, ReLU, Dropout, Softmax."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2, ceil_mode=True),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2))
        self.classifier = nn.Sequential(nn.Linear(16 * 3 * 3, 32), nn.ReLU(), nn.Dropout(0.5),
                                        nn.Linear(32, classes), nn.Softmax(dim=1))

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))


class DepthwiseSiLU(nn.Module):
    """MobileNet-style depthwise-separable blocks with SiLU (exported as x * Sigmoid(x)),
    global average pooling and a Linear head."""

    def __init__(self, classes: int = 10):
        super().__init__()

        def separable(inputs, outputs, stride):
            return [nn.Conv2d(inputs, inputs, 3, stride, 1, groups=inputs, bias=False), bn(inputs), nn.SiLU(),
                    nn.Conv2d(inputs, outputs, 1, bias=False), bn(outputs), nn.SiLU()]

        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), bn(8), nn.SiLU(),
                                      *separable(8, 16, 1), *separable(16, 24, 2), *separable(24, 32, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(32, classes)

    def forward(self, x):
        return self.head(self.pool(self.features(x)).flatten(1))


class EncoderDecoder(nn.Module):
    """A small U-Net: strided encoder, nearest upsampling, skip concatenations,
    residual adds, a transposed convolution and a tanh head."""

    def __init__(self):
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), bn(8), nn.LeakyReLU(0.1))
        self.enc2 = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), bn(16), nn.ReLU())
        self.enc3 = nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU())
        self.res = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), bn(16), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
        self.up1 = nn.Upsample(scale_factor=2, mode="nearest")
        self.dec2 = nn.Sequential(nn.Conv2d(32, 16, 3, padding=1), nn.ReLU())
        self.up2 = nn.ConvTranspose2d(16, 8, 4, 2, 1)
        self.dec1 = nn.Sequential(nn.Conv2d(16, 8, 3, padding=1), nn.Sigmoid(), nn.Conv2d(8, 3, 1), nn.Tanh())

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e3 = e3 + self.res(e3)
        d2 = self.dec2(torch.cat([self.up1(e3), e2], 1))
        return self.dec1(torch.cat([self.up2(d2), e1], 1))


class PyTorchDefaults(nn.Module):
    """Layers with PyTorch's default arguments that Darknet has no single layer for:
    LeakyReLU (slope 0.01), PReLU per channel and shared, with a residual block, a
    depthwise convolution with SiLU, nearest upsampling and an adaptive-pool head."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), bn(8), nn.LeakyReLU(), nn.MaxPool2d(2, ceil_mode=True))
        self.res = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), bn(8))
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.SiLU(), nn.PReLU(8),
                                  nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(8, 16, 3, 2, 1),
                                  nn.LeakyReLU(0.2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(16, 16), nn.PReLU(), nn.Dropout(), nn.Linear(16, classes), nn.Softmax(1))
        with torch.no_grad():  # slopes of a trained model, not all the initial 0.25
            self.body[2].weight.uniform_(-0.2, 0.6)

    def forward(self, x):
        x = self.stem(x)
        return self.head(self.body(torch.relu(x + self.res(x))))


# file name -> (module, input C x H x W, opset, dynamic batch, fold constants, dynamo).
# Without constant folding, the TorchScript exporter leaves BatchNormalization nodes for
# the converter.
FIXTURES = {
    "resnet18.onnx": (ResNet18, (3, 64, 64), 13, False, False, False),
    "vgg_style.onnx": (VGGStyle, (3, 29, 29), 11, True, True, False),
    "depthwise_silu.onnx": (DepthwiseSiLU, (3, 48, 48), 17, True, False, False),
    "encoder_decoder.onnx": (EncoderDecoder, (3, 32, 32), 20, False, True, False),
    "with_dynamo.onnx": (PyTorchDefaults, (3, 32, 32), 18, False, True, True),
}


def main(folder: str) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for seed, (name, (make, shape, opset, dynamic, fold, dynamo)) in enumerate(sorted(FIXTURES.items())):
        torch.manual_seed(seed)
        model = make().eval()
        axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic else None
        torch.onnx.export(model, (torch.rand(1, *shape),), out / name, input_names=["input"], output_names=["output"],
                          opset_version=opset, dynamic_axes=axes, do_constant_folding=fold, dynamo=dynamo,
                          **({"external_data": False} if dynamo else {}))
        print(f"wrote {out / name} ({(out / name).stat().st_size} bytes, opset {opset})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/onnx")
