"""python -m pydarknet.darknet2onnx: export a Darknet model to ONNX; the same as
``pydarknet to-onnx`` (pydarknet/cli/to_onnx.py says how)."""

import sys

from .cli import command

main = command("to-onnx")

if __name__ == "__main__":
    sys.exit(main())
