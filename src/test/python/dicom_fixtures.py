#!/usr/bin/python3
"""Test fixtures and reference decodes for cxr-gateway ingest tests (run with /usr/bin/python3).

  dicom_fixtures.py cases <outdir>            synthetic CR/DX files covering the decode paths and bad input
  dicom_fixtures.py reference <in.dcm> <out> [W H]
                                              8-bit reference rendering (raw bytes, row-major), shrunk
                                              to W x H by OpenCV's INTER_AREA when given
  dicom_fixtures.py bench <outdir> <n>        n synthetic 1024x1024 16-bit DX files (one study)

The reference rendering uses pydicom's own Modality LUT and VOI LUT / windowing
(apply_modality_lut, apply_voi_lut), normalised to [0, 1] the way pydicom defines its output
range, MONOCHROME1 inverted, rounded to 0..255. Without VOI LUT or window it uses the 0.5th and
99.5th percentiles of the stored values ("lower" rule), as the gateway documents. The working-image
downscale is an exact area average; its reference is OpenCV's cv2.resize(INTER_AREA) on the float
rendering (which weighs every source pixel by the fraction of it an output pixel covers, also for
non-integer factors; PIL's BOX filter does not, it takes whole pixels).
"""
import io
import os
import sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut
from pydicom.uid import (ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000,
                         JPEG2000Lossless, generate_uid)

CR = "1.2.840.10008.5.1.4.1.1.1"
DX = "1.2.840.10008.5.1.4.1.1.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
SC = "1.2.840.10008.5.1.4.1.1.7"


def phantom(rows, cols, bits, seed, signed=False):
    """A chest-like smooth phantom with noise: deterministic, covering the whole stored range."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols]
    body = np.exp(-(((x - cols / 2) / (cols / 2.5)) ** 2 + ((y - rows / 2) / (rows / 2.2)) ** 2))
    lungs = np.exp(-(((x - cols * 0.33) / (cols / 8)) ** 2 + ((y - rows * 0.45) / (rows / 4)) ** 2)) \
        + np.exp(-(((x - cols * 0.67) / (cols / 8)) ** 2 + ((y - rows * 0.45) / (rows / 4)) ** 2))
    v = 0.15 + 0.6 * body - 0.35 * lungs + 0.03 * rng.standard_normal((rows, cols))
    v = (v - v.min()) / (v.max() - v.min())
    maxv = (1 << bits) - 1
    a = np.round(v * maxv).astype(np.int64)
    if signed:
        a = a - (1 << (bits - 1))
        return a.astype(np.int16)
    return a.astype(np.uint16) if bits > 8 else a.astype(np.uint8)


def base(sop_class, modality, study_uid, rows, cols, bits_stored, photometric="MONOCHROME2",
         signed=False, bits_allocated=16, transfer_syntax=ExplicitVRLittleEndian):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.9.7433.1.1"
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "TEST^PHANTOM"
    ds.PatientID = "PH-0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate = "20240101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = "ACC0001"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "XR CHEST 1 VIEW"
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.ImageLaterality = "U"
    ds.PatientOrientation = ["L", "F"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.is_little_endian = True
    ds.is_implicit_VR = transfer_syntax == ImplicitVRLittleEndian
    return ds


def save(ds, path):
    ds.save_as(path, write_like_original=False)


def j2k(arr, lossless):
    from PIL import Image
    im = Image.fromarray(arr.astype(np.uint16), mode="I;16")
    buf = io.BytesIO()
    if lossless:
        im.save(buf, format="JPEG2000", irreversible=False, no_jp2=True)
    else:
        im.save(buf, format="JPEG2000", irreversible=True, no_jp2=True, quality_mode="rates",
                quality_layers=[8])
    return buf.getvalue()


def cases(out):
    os.makedirs(out, exist_ok=True)
    study = generate_uid()
    rows, cols = 300, 240

    ds = base(CR, "CR", study, rows, cols, 12)
    ds.RescaleSlope = "1.5"
    ds.RescaleIntercept = "-200"
    ds.RescaleType = "US"
    ds.WindowCenter = "2500"
    ds.WindowWidth = "3000"
    ds.PixelData = phantom(rows, cols, 12, 1).tobytes()
    save(ds, f"{out}/mono2_12bit_rescale_window.dcm")

    ds = base(DX, "DX", study, rows, cols, 12, photometric="MONOCHROME1",
              transfer_syntax=ImplicitVRLittleEndian)
    ds.PresentationLUTShape = "INVERSE"
    ds.WindowCenter = ["1800", "1000"]
    ds.WindowWidth = ["2400", "500"]
    ds.PixelData = phantom(rows, cols, 12, 2).tobytes()
    save(ds, f"{out}/mono1_12bit_window.dcm")

    ds = base(DX, "DX", study, rows, cols, 14)
    ds.RescaleSlope = "1"
    ds.RescaleIntercept = "0"
    ds.PixelData = phantom(rows, cols, 14, 3).tobytes()
    save(ds, f"{out}/mono2_14bit_default_window.dcm")

    ds = base(DX, "DX", study, rows, cols, 12)
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 16]
    x = np.arange(4096) / 4095.0
    lut.LUTData = np.round(65535 * x ** 0.6).astype(np.uint16).tolist()
    lut["LUTData"].VR = "US"
    ds.VOILUTSequence = [lut]
    ds.PixelData = phantom(rows, cols, 12, 4).tobytes()
    save(ds, f"{out}/mono2_12bit_voilut.dcm")

    ds = base(DX, "DX", study, rows, cols, 16, signed=True)
    ds.WindowCenter = "0"
    ds.WindowWidth = "40000"
    ds.VOILUTFunction = "SIGMOID"
    ds.PixelData = phantom(rows, cols, 16, 5, signed=True).tobytes()
    save(ds, f"{out}/signed_16bit_sigmoid.dcm")

    ds = base(CR, "CR", study, rows, cols, 8, bits_allocated=8, photometric="MONOCHROME1")
    ds.PixelData = phantom(rows, cols, 8, 6).tobytes()
    save(ds, f"{out}/mono1_8bit_default_window.dcm")

    # JPEG 2000 lossless (from the 12-bit MONOCHROME1 case) and lossy (from the 12-bit rescale case)
    for name, src, lossless, ts in (("j2k_lossless_mono1.dcm", "mono1_12bit_window.dcm", True, JPEG2000Lossless),
                                    ("j2k_lossy_mono2.dcm", "mono2_12bit_rescale_window.dcm", False, JPEG2000)):
        s = pydicom.dcmread(f"{out}/{src}")
        pixels = s.pixel_array
        s.file_meta.TransferSyntaxUID = ts
        s.SOPInstanceUID = generate_uid()
        s.file_meta.MediaStorageSOPInstanceUID = s.SOPInstanceUID
        s.PixelData = encapsulate([j2k(pixels, lossless)])
        s["PixelData"].VR = "OB"
        s["PixelData"].is_undefined_length = True
        s.is_implicit_VR = False
        if not lossless:
            s.LossyImageCompression = "01"
        save(s, f"{out}/{name}")

    # Ineligible and bad input, same study
    ds = base(CT, "CT", study, 64, 64, 12)
    ds.PixelData = phantom(64, 64, 12, 7).tobytes()
    save(ds, f"{out}/bad_ct.dcm")

    ds = base(DX, "DX", study, 64, 64, 12)
    ds.ViewPosition = "LL"
    ds.PixelData = phantom(64, 64, 12, 8).tobytes()
    save(ds, f"{out}/bad_lateral.dcm")

    ds = base(DX, "DX", study, 64, 64, 12)
    save(ds, f"{out}/bad_no_pixel_data.dcm")

    ds = base(SC, "OT", study, 64, 64, 8, bits_allocated=8)
    ds.ConversionType = "WSD"
    ds.PixelData = phantom(64, 64, 8, 9).tobytes()
    save(ds, f"{out}/sc.dcm")

    ds = base(DX, "DX", study, 64, 64, 12)
    ds.BodyPartExamined = "KNEE"
    ds.StudyDescription = "XR KNEE"
    ds.PixelData = phantom(64, 64, 12, 10).tobytes()
    save(ds, f"{out}/bad_knee.dcm")
    print(study)


def reference(path, out, size=None):
    v = rendered(pydicom.dcmread(path))
    if size is not None:
        import cv2
        v = cv2.resize(v.astype(np.float32), size, interpolation=cv2.INTER_AREA).astype(np.float64)
    with open(out, "wb") as f:
        f.write(np.round(v * 255).astype(np.uint8).tobytes())


def rendered(ds):
    """The display values in [0, 1] at source resolution, 0 = black, by pydicom's LUT functions."""
    stored = ds.pixel_array
    arr = apply_modality_lut(stored, ds).astype(np.float64)
    if "VOILUTSequence" in ds:
        item = ds.VOILUTSequence[0]
        bits = int(item.LUTDescriptor[2])
        v = apply_voi_lut(arr, ds, prefer_lut=True).astype(np.float64) / (2 ** bits - 1)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        if ds.PixelRepresentation == 0:
            y_min, y_max = 0, 2 ** ds.BitsStored - 1
        else:
            y_min, y_max = -2 ** (ds.BitsStored - 1), 2 ** (ds.BitsStored - 1) - 1
        if "RescaleSlope" in ds and "RescaleIntercept" in ds:
            y_min = y_min * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            y_max = y_max * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        v = (apply_voi_lut(arr, ds, prefer_lut=True) - y_min) / (y_max - y_min)
    else:
        lo, hi = np.percentile(stored.astype(np.int64), [0.5, 99.5], method="lower")
        slope = float(ds.get("RescaleSlope", 1))
        intercept = float(ds.get("RescaleIntercept", 0))
        a, b = lo * slope + intercept, hi * slope + intercept
        v = (arr - min(a, b)) / abs(b - a)
    v = np.clip(v, 0, 1)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        v = 1 - v
    return v


def bench(out, n):
    os.makedirs(out, exist_ok=True)
    study = generate_uid()
    series = generate_uid()
    pixels = phantom(1024, 1024, 16, 11)
    for i in range(n):
        ds = base(DX, "DX", study, 1024, 1024, 16)
        ds.SeriesInstanceUID = series
        ds.InstanceNumber = i + 1
        ds.PixelData = np.roll(pixels, i, axis=1).tobytes()
        save(ds, f"{out}/bench_{i:04d}.dcm")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "cases":
        cases(sys.argv[2])
    elif cmd == "reference":
        reference(sys.argv[2], sys.argv[3], (int(sys.argv[4]), int(sys.argv[5])) if len(sys.argv) > 5 else None)
    elif cmd == "bench":
        bench(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit("unknown command " + cmd)
