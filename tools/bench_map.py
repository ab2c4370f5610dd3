"""The zoo's detectors' mAP on upstream's seven sample images, labelled in tests/labelled/
(AlexeyAB's yolov4-tiny detections: see PROVENANCE.md there), as loaded, after fold-bn,
exported with to-onnx --boxes and run on onnxruntime, and in int8 (pydarknet quantize on
the --calibrate images, by default those seven themselves): a transform that keeps the
model's answers keeps these figures.

    python tools/bench_map.py [--points 0] [--models yolov3-tiny,yolov4-tiny] [--calibrate IMAGE...]

Prints a Markdown table (Darknet's convention, mAP@0.5, and COCO's AP50 is not here: the
labels are Darknet's). Not a test: the figures are a record of this machine's run.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' labelled sets

import pydarknet  # noqa: E402
from pydarknet.api import zoo  # noqa: E402
from support.labelled import samples_set  # noqa: E402


def pydarknet_command(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pydarknet", *args], check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, choices=(0, 11, 101), default=0)
    parser.add_argument("--models", default="yolov3-tiny,yolov4-tiny")
    parser.add_argument("--calibrate", nargs="+", help="int8 calibration images (default: the seven samples)")
    args = parser.parse_args()
    print("| model | as loaded | after fold-bn | to-onnx on onnxruntime | int8 |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        data = samples_set(work)
        for name in args.models.split(","):
            files = zoo.files(name)
            pydarknet_command("fold-bn", name, "-o", str(work / f"{name}-folded"))
            pydarknet_command("to-onnx", name, "-o", str(work / f"{name}.onnx"), "--boxes")
            pydarknet_command("quantize", "--model", name, "-o", str(work / f"{name}-int8"), "--calibrate",
                              *(args.calibrate or [str(image) for image in sorted((work / "img").glob("*.jpg"))]))
            int8 = pydarknet.Network(work / f"{name}-int8.cfg", work / f"{name}-int8.weights", names=files.names,
                                     precision="int8")
            model = (files.cfg, files.weights, files.names)
            folded = (work / f"{name}-folded.cfg", work / f"{name}-folded.weights", files.names)
            figures = [pydarknet.evaluate(model, data=data, points=args.points),
                       pydarknet.evaluate(folded, data=data, points=args.points),
                       pydarknet.evaluate(model, data=data, points=args.points, onnx=work / f"{name}.onnx"),
                       pydarknet.evaluate(int8, data=data, points=args.points)]
            int8.close()
            print(f"| {name} | " + " | ".join(f"{e.map:.6f} (TP {e.tp}, FP {e.fp})" for e in figures) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
