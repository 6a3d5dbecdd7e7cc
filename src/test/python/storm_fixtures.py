#!/usr/bin/python3
"""Inputs for the malformed-input storm test (run with /usr/bin/python3).

  storm_fixtures.py <outdir> <good>

Writes, each in a study of its own unless said otherwise:
  good_<i>.dcm           a PA chest DX (eligible)
  good_<i>_lateral.dcm   for i < 2: a lateral DX in the same study as good_<i> (skipped, the study is still scored)
  lateral_only.dcm       a study whose only image is a lateral (no job)
  no_pixels.dcm          a chest DX without Pixel Data (no job)
  ct.dcm                 a CT image (not a SOP class the gateway accepts)
  for_jls.dcm            a chest DX, to be compressed to JPEG-LS by the test (dcmcjpls)
  truncated.raw          the data set (Explicit VR Little Endian, no file meta) of a chest DX, cut inside Pixel Data
  garbage.raw            the first elements of a chest DX data set, then random bytes
and prints one JSON object: name -> {"study", "sop", "sop_class"}.
"""
import json
import os
import sys

import numpy as np
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import generate_uid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dicom_fixtures import CT, DX, base, phantom, save  # noqa: E402


def chest(study, seed, rows=256, cols=256):
    ds = base(DX, "DX", study, rows, cols, 12)
    ds.PixelData = phantom(rows, cols, 12, seed).tobytes()
    return ds


def data_set_bytes(ds):
    buf = DicomBytesIO()
    buf.is_little_endian = True
    buf.is_implicit_VR = False
    write_dataset(buf, ds)
    return buf.getvalue()


def main(out, good):
    os.makedirs(out, exist_ok=True)
    made = {}

    def keep(name, ds):
        made[name] = {"study": str(ds.StudyInstanceUID), "sop": str(ds.SOPInstanceUID),
                      "sop_class": str(ds.SOPClassUID)}
        return ds

    for i in range(good):
        ds = keep(f"good_{i}", chest(generate_uid(), 100 + i))
        save(ds, f"{out}/good_{i}.dcm")
        if i < 2:
            lat = keep(f"good_{i}_lateral", chest(ds.StudyInstanceUID, 200 + i, 128, 128))
            lat.ViewPosition = "LL"
            save(lat, f"{out}/good_{i}_lateral.dcm")

    lat = keep("lateral_only", chest(generate_uid(), 300, 128, 128))
    lat.ViewPosition = "RL"
    save(lat, f"{out}/lateral_only.dcm")

    ds = keep("no_pixels", base(DX, "DX", generate_uid(), 128, 128, 12))
    save(ds, f"{out}/no_pixels.dcm")

    ds = keep("ct", base(CT, "CT", generate_uid(), 64, 64, 12))
    ds.PixelData = phantom(64, 64, 12, 301).tobytes()
    save(ds, f"{out}/ct.dcm")

    save(keep("for_jls", chest(generate_uid(), 302)), f"{out}/for_jls.dcm")

    ds = keep("truncated", chest(generate_uid(), 303))
    full = data_set_bytes(ds)
    # cut well inside Pixel Data, on an even length as a PDV must be
    cut = (len(full) - len(ds.PixelData) // 2) & ~1
    with open(f"{out}/truncated.raw", "wb") as f:
        f.write(full[:cut])

    ds = keep("garbage", chest(generate_uid(), 304))
    header = ds[0x00080000:0x00100000]  # the (0008,xxxx) group: SOP Class/Instance, dates, modality ...
    header.is_little_endian = True
    header.is_implicit_VR = False
    junk = np.random.default_rng(305).integers(0, 256, 150_000, dtype=np.uint8).tobytes()
    with open(f"{out}/garbage.raw", "wb") as f:
        f.write(data_set_bytes(header) + junk)

    print(json.dumps(made))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
