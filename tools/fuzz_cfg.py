"""Look for cfg values that crash the process instead of raising DarknetError.

    python tools/fuzz_cfg.py [CFG ...]      (default: yolov3-tiny.cfg and resnet18.cfg)

Every numeric `key=value` line is set to 0 and to -1 in turn; each variant is loaded
and run once in a fresh interpreter, and any death by a signal is reported. Takes a few
minutes per cfg; not part of the test suite (the findings are, as regression tests).
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pydarknet

RUN_ONE = """
import sys, numpy as np, pydarknet
try:
    net = pydarknet.Network(sys.argv[1])
    net.predict(np.ones(net.input_shape, np.float32))
except pydarknet.DarknetError:
    pass
"""


def variants(text):
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        match = re.fullmatch(r"\s*(\w+)\s*=\s*-?\d+\s*", line)
        if match:
            for value in ("0", "-1"):
                edited = lines[:number - 1] + [f"{match.group(1)}={value}"] + lines[number:]
                yield f"line {number}: {match.group(1)}={value}", "\n".join(edited)


def main() -> int:
    cfgs = [Path(p) for p in sys.argv[1:]] or [pydarknet.upstream_path("cfg/yolov3-tiny.cfg"),
                                               pydarknet.upstream_path("cfg/resnet18.cfg")]
    crashes = runs = 0
    with tempfile.TemporaryDirectory() as work:
        case = Path(work) / "case.cfg"
        for cfg in cfgs:
            for label, text in variants(cfg.read_text()):
                case.write_text(text)
                done = subprocess.run([sys.executable, "-c", RUN_ONE, str(case)], capture_output=True, text=True)
                runs += 1
                if done.returncode != 0:
                    crashes += 1
                    print(f"CRASH ({done.returncode}) {cfg.name} {label}: {done.stderr.strip()[-200:]}")
    print(f"{runs} variants, {crashes} crashes")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
