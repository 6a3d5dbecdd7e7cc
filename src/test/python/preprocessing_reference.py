#!/usr/bin/python3
"""The library side of org.cxrgateway.inference.PreprocessorLibraryTest: every case's 8-bit image run
through src/main/python/cxr_preprocessing.py, i.e. through PIL/torchvision/skimage themselves.

    preprocessing_reference.py WORK   reads WORK/cases.json [{"spec", "image", "width", "height", "out"}]
                                      (image: raw uint8, row-major) and writes each out (float32 LE)
    preprocessing_reference.py WORK presets   writes WORK/presets.json, the importer presets' specs
"""
import json
import os
import pathlib
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "main", "python"))
import cxr_preprocessing  # noqa: E402


def main(work):
    if len(sys.argv) > 2 and sys.argv[2] == "presets":
        pathlib.Path(work, "presets.json").write_text(json.dumps(cxr_preprocessing.PRESETS))
        return
    for case in json.loads(pathlib.Path(work, "cases.json").read_text()):
        img = np.fromfile(os.path.join(work, case["image"]), dtype=np.uint8).reshape(case["height"], case["width"])
        x = cxr_preprocessing.apply(case["spec"], img)
        x.astype("<f4").tofile(os.path.join(work, case["out"]))


if __name__ == "__main__":
    main(sys.argv[1])
