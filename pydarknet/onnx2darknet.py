"""python -m pydarknet.onnx2darknet: convert an ONNX model into Darknet files; the same as ``pydarknet convert``
(pydarknet/cli/convert.py says how)."""

import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    from .cli import main as pydarknet

    return pydarknet(["convert", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
