"""DICOM -> working image by the gateway's rules (org.cxrgateway.ingest.WorkingImageDecoder):
Modality LUT, then the VOI LUT, else the first window (LINEAR, LINEAR_EXACT, SIGMOID), else the
robust default window (0.5th..99.5th percentile of the stored values, "lower" rule); MONOCHROME1
inverted; area-averaged down so the long side is at most `long_side`; quantised to 8 bits with
Java's Math.round (half up). Training therefore sees exactly the grey levels the workers see."""
import math

import numpy as np
import pydicom

WORKING_LONG_SIDE = 1024  # cxr.assembly.working-long-side default


class Unreadable(Exception):
    """A file that cannot be turned into a working image; the message says why, in one line."""


def _stored(ds):
    if "PixelData" not in ds:
        raise Unreadable("no pixel data")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise Unreadable("not a single-sample image")
    pi = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if pi not in ("MONOCHROME1", "MONOCHROME2"):
        raise Unreadable("not grayscale (%s)" % (pi or "no PhotometricInterpretation"))
    try:
        arr = ds.pixel_array
    except Exception as e:  # pydicom raises many types for bad pixel data; all are bad input here
        raise Unreadable("cannot read pixel data: %s" % (str(e).splitlines()[0] if str(e) else type(e).__name__))
    if arr.ndim != 2:
        raise Unreadable("not a single-frame image")
    bits = int(ds.get("BitsStored", ds.BitsAllocated))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    v = arr.astype(np.int64) & ((1 << bits) - 1)
    if signed:
        v = np.where(v & (1 << (bits - 1)), v - (1 << bits), v)
    return v, pi == "MONOCHROME1"


def _window(x, c, w, function):
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    if function == "LINEAR_EXACT":
        return np.where(x <= c - w / 2, 0.0, np.where(x > c + w / 2, 1.0, (x - c) / w + 0.5))
    if w <= 1:
        return np.where(x <= c - 0.5, 0.0, 1.0)
    return np.where(x <= c - 0.5 - (w - 1) / 2, 0.0,
                    np.where(x > c - 0.5 + (w - 1) / 2, 1.0, (x - (c - 0.5)) / (w - 1) + 0.5))


def _first(value):
    if value is None:
        return float("nan")
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return float(value[0]) if len(value) else float("nan")
    return float(value)


def render(ds):
    """Display values in [0, 1] (float32), 0 = black, at source resolution."""
    s, mono1 = _stored(ds)
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    m = s * slope + intercept
    lut = None
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        item = ds.VOILUTSequence[0]
        if "LUTDescriptor" in item and "LUTData" in item:
            desc = [int(x) for x in item.LUTDescriptor]
            data = item.LUTData
            if isinstance(data, bytes):
                data = np.frombuffer(data, dtype="<u2") if desc[2] > 8 else np.frombuffer(data, dtype=np.uint8)
            lut = (desc[1], desc[2], np.asarray(data, dtype=np.int64) & 0xFFFF)
    c = _first(ds.get("WindowCenter"))
    w = _first(ds.get("WindowWidth"))
    if lut is not None and len(lut[2]) > 0:
        first, bits, data = lut
        mx = float((1 << max(1, min(16, bits))) - 1)
        idx = np.where(m < first, 0, np.minimum(len(data) - 1, np.floor(m - first)).astype(np.int64))
        idx = np.clip(idx, 0, len(data) - 1)
        out = np.minimum(1.0, data[idx] / mx)
    elif not (math.isnan(c) or math.isnan(w)):
        fn = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
        out = _window(m, c, w, fn)
    else:
        flat = np.sort(s.ravel())
        n = flat.size
        lo = flat[int(math.floor(0.5 / 100.0 * (n - 1)))]
        hi = flat[int(math.floor(99.5 / 100.0 * (n - 1)))]
        a, b = lo * slope + intercept, hi * slope + intercept
        rng = abs(b - a)
        out = np.zeros(m.shape) if rng <= 0 else np.clip((m - min(a, b)) / rng, 0.0, 1.0)
    out = out.astype(np.float32)
    if mono1:
        out = np.float32(1.0) - out
    return out


def _weights(src, dst):
    """Area-average matrix [dst, src]: each source pixel contributes by the area it covers."""
    ratio = src / dst
    m = np.zeros((dst, src), dtype=np.float64)
    for d in range(dst):
        a, b = d * ratio, min(src, (d + 1) * ratio)
        s = int(math.floor(a))
        while s < b and s < src:
            cover = min(b, s + 1) - max(a, s)
            if cover > 0:
                m[d, s] = cover / (b - a)
            s += 1
    return m


def area_resize(img, w, h):
    sh, sw = img.shape
    horizontal = (img.astype(np.float64) @ _weights(sw, w).T).astype(np.float32)
    return (_weights(sh, h) @ horizontal.astype(np.float64)).astype(np.float32)


def working_image(ds, long_side=WORKING_LONG_SIDE):
    """The 8-bit working image [H, W] uint8 that ingest would put in the job."""
    display = render(ds)
    rows, cols = display.shape
    scale = min(1.0, long_side / float(max(rows, cols)))
    w = max(1, int(math.floor(cols * scale + 0.5)))
    h = max(1, int(math.floor(rows * scale + 0.5)))
    if (w, h) != (cols, rows):
        display = area_resize(display, w, h)
    return np.floor(np.clip(display.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def read(path, long_side=WORKING_LONG_SIDE):
    """(dataset header without pixels, working image). Raises Unreadable with a one-line reason."""
    try:
        ds = pydicom.dcmread(path)
    except FileNotFoundError:
        raise Unreadable("no such file")
    except PermissionError:
        raise Unreadable("permission denied")
    except IsADirectoryError:
        raise Unreadable("is a directory")
    except Exception as e:
        raise Unreadable("cannot parse DICOM: %s" % (str(e).splitlines()[0] if str(e) else type(e).__name__))
    img = working_image(ds, long_side)
    return ds, img


def header(ds):
    """The few header fields that define subgroups (view, sex, manufacturer) and identify the image."""
    def g(k):
        v = ds.get(k)
        return str(v).strip() if v not in (None, "") else ""
    return {"sop_instance_uid": g("SOPInstanceUID"), "study_instance_uid": g("StudyInstanceUID"),
            "view": g("ViewPosition").upper(), "sex": g("PatientSex").upper(), "manufacturer": g("Manufacturer"),
            "rows": int(ds.get("Rows", 0)), "columns": int(ds.get("Columns", 0))}


def main():
    """python3 -m cxr_model.decode IN.dcm OUT.u8 [LONG_SIDE]: writes the raw working image, prints its
    width and height (WorkingImageDecoderTest compares it with the Java decoder)."""
    import sys
    ds, img = read(sys.argv[1], int(sys.argv[3]) if len(sys.argv) > 3 else WORKING_LONG_SIDE)
    img.tofile(sys.argv[2])
    print("%d %d" % (img.shape[1], img.shape[0]))


if __name__ == "__main__":
    main()
