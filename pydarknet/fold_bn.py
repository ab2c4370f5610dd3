"""python -m pydarknet.fold_bn: fold batch normalization into the layer before it; the same as ``pydarknet fold-bn``
(pydarknet/cli/fold_bn.py says how)."""

import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    from .cli import main as pydarknet

    return pydarknet(["fold-bn", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
