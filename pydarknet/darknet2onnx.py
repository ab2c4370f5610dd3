"""python -m pydarknet.darknet2onnx: export a Darknet model to ONNX; the same as
``pydarknet to-onnx`` (pydarknet/cli/to_onnx.py says how)."""

import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    from .cli import main as pydarknet

    return pydarknet(["to-onnx", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
