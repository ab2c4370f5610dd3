"""python -m pydarknet.fold_bn: fold batch normalization into the layer before it; the same as ``pydarknet fold-bn``
(pydarknet/cli/fold_bn.py says how)."""

import sys

from .cli import command

main = command("fold-bn")

if __name__ == "__main__":
    sys.exit(main())
