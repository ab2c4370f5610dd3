"""python -m pydarknet.caffe2darknet: convert a Caffe model into Darknet files; the same as ``pydarknet convert``
(pydarknet/cli/convert.py says how)."""

import sys

from .cli import command

main = command("convert")

if __name__ == "__main__":
    sys.exit(main())
