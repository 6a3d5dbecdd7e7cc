"""Synthetic chest-like radiographs as DICOM, with findings of known place and appearance, for
proving the toolkit without downloads. NOT real anatomy and NOT for any clinical purpose.

Each image: body, two lung fields with vessel-like markings and ribs, mediastinum, heart, diaphragm;
geometry, exposure, noise and vendor look vary per image. Findings (ChestX-ray14 names):
  Nodule        small round opacity in a lung field                      box: the nodule
  Effusion      basal opacity with a meniscus, blunting the costophrenic angle   box: the fluid
  Cardiomegaly  cardiothoracic ratio 0.55-0.68 (normal 0.38-0.47)        box: the heart
  Pneumothorax  an apex without lung markings, bordered by a pleural line  box: the air space
--task covid3 makes Normal / Pneumonia (unilateral lobar consolidation) / COVID-19 (bilateral
peripheral basal ground glass) instead, one-hot.

Many patients with several studies each (cardiomegaly and most nodules persist across a patient's
studies), three readers who each miss or over-call a finding now and then (LABELS.csv has
Finding@r1..r3, reduced by majority vote), boxes as Finding_bbox. The truth is written to TRUTH.csv.
Pixels are stored as 12-bit MONOCHROME2 or MONOCHROME1, with or without a window, some with a
rescale, so decoding follows every branch of the gateway's rules."""
import argparse
import csv
import math
import os

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

FINDINGS = ["Nodule", "Effusion", "Cardiomegaly", "Pneumothorax"]
PREVALENCE = {"Nodule": 0.15, "Effusion": 0.20, "Cardiomegaly": 0.28, "Pneumothorax": 0.10}
COVID3 = ["Normal", "Pneumonia", "COVID-19"]
COVID3_SHARE = (0.45, 0.30, 0.25)
VENDORS = [("Acme Radiography", 1.0, 0.012), ("Borealis Imaging", 0.85, 0.018), ("Cetus Medical", 1.15, 0.010)]
DX_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
UID_ROOT = "1.2.826.0.1.3680043.10.1077."  # pydicom's example root: synthetic objects


def _uid(*parts):
    return generate_uid(prefix=None, entropy_srcs=[str(p) for p in parts])


def _grid(s):
    y, x = np.mgrid[0:s, 0:s].astype(np.float32)
    return (x + 0.5) / s, (y + 0.5) / s


class Anatomy:
    def __init__(self, rng, ctr):
        self.x0 = 0.5 + rng.normal(0, 0.015)
        self.top = 0.13 + rng.normal(0, 0.015)
        self.bottom = 0.78 + rng.normal(0, 0.02)
        self.tw = 0.36 + rng.normal(0, 0.02)  # half thoracic width: outer lung edges at x0 +- tw
        self.ctr = ctr
        self.heart_cx = self.x0 + 0.035
        self.heart_cy = self.bottom - 0.11
        self.heart_hw = ctr * self.tw
        self.heart_hh = 0.11 + 0.08 * (ctr - 0.42)

    def lung(self, side):
        """(center x, center y, semi-axis a, semi-axis b) of lung side -1 (image left) or +1."""
        a = self.tw * 0.46
        cx = self.x0 + side * (self.tw - a)
        return cx, (self.top + self.bottom) / 2, a, (self.bottom - self.top) / 2

    def lung_mask(self, X, Y, side, shrink=0.0):
        cx, cy, a, b = self.lung(side)
        a, b = a - shrink, b - shrink
        r = (np.abs(X - cx) / a) ** 2.2 + (np.abs(Y - cy) / b) ** 2.2
        return r <= 1.0


def _disc(X, Y, cx, cy, r):
    d2 = ((X - cx) ** 2 + (Y - cy) ** 2) / (r * r)
    return np.sqrt(np.clip(1.0 - d2, 0, 1))


def render(rng, s, truth, anatomy, task):
    """Display-domain image in [0, 1] (0 black = air) and boxes {finding: (x, y, w, h) in pixels}."""
    X, Y = _grid(s)
    an = anatomy
    img = np.full((s, s), 0.04, np.float32)
    body = ((X - an.x0) / (an.tw + 0.09)) ** 2 + ((Y - 0.55) / 0.62) ** 2 <= 1.0
    img[body] = 0.62
    # markings: band-passed noise, stronger near the hila
    noise = rng.normal(0, 1, (s, s)).astype(np.float32)
    markings = ndimage.gaussian_filter(noise, s / 170.0) - ndimage.gaussian_filter(noise, s / 45.0)
    markings = markings / (markings.std() + 1e-6)
    boxes = {}
    lungs = np.zeros((s, s), bool)
    air = np.zeros((s, s), np.float32)
    ptx_side = rng.choice([-1, 1])
    ptx = np.zeros((s, s), bool)
    pleural = np.zeros((s, s), np.float32)
    for side in (-1, 1):
        m = an.lung_mask(X, Y, side)
        lungs |= m
        cx, cy, a, b = an.lung(side)
        hilum = np.exp(-(((X - (an.x0 + side * 0.07)) ** 2) + (Y - 0.45) ** 2) / 0.05)
        lung_val = 0.20 + 0.05 * markings * (0.5 + hilum) + 0.04 * (Y - an.top)
        if truth.get("Pneumothorax") and side == ptx_side:
            depth = rng.uniform(0.16, 0.30)
            gap = rng.uniform(0.035, 0.07)
            inner = an.lung_mask(X, Y, side, shrink=gap)
            zone = Y < (an.top + depth)
            # the collapsed lung's edge: the inner boundary in the apical zone
            ptx = m & ~inner & zone
            edge = inner & ~an.lung_mask(X, Y, side, shrink=gap + 2.0 / s) & zone
            pleural[edge] = 0.22
            lung_val = np.where(ptx, 0.13, lung_val)
            ys, xs = np.nonzero(ptx)
            if len(xs):
                boxes["Pneumothorax"] = (float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1))
        air = np.where(m, lung_val, air)
    img = np.where(lungs, air, img)
    img = img + pleural
    # ribs: curved bright bands over the lungs
    for k in range(9):
        y0 = an.top - 0.02 + k * (an.bottom - an.top) / 8.5
        for side in (-1, 1):
            curve = y0 + 0.18 * (X - an.x0) ** 2 * 4 - 0.03 * side * (X - an.x0)
            band = np.exp(-((Y - curve) / 0.008) ** 2) * lungs
            img = img + 0.07 * band
    # mediastinum and spine
    med = (np.abs(X - an.x0) < 0.06 + 0.02 * (Y > 0.35)) & (Y > an.top - 0.05) & body
    img = np.where(med & ~lungs, 0.72, img)
    img = np.where(med & lungs, np.maximum(img, 0.6), img)
    # heart: bright ellipse over the medial lower lungs
    heart = ((X - an.heart_cx) / an.heart_hw) ** 2 + ((Y - an.heart_cy) / an.heart_hh) ** 2 <= 1.0
    img = np.where(heart, np.maximum(img, 0.66), img)
    if truth.get("Cardiomegaly"):
        boxes["Cardiomegaly"] = ((an.heart_cx - an.heart_hw) * s, (an.heart_cy - an.heart_hh) * s, 2 * an.heart_hw * s, 2 * an.heart_hh * s)
    # diaphragm domes and abdomen
    for side in (-1, 1):
        cx, cy, a, b = an.lung(side)
        dome = (Y > an.bottom - 0.05 + 0.25 * ((X - cx) / a) ** 2 * 0.2) & body & (np.abs(X - cx) < a * 1.1)
        img = np.where(dome & ~lungs, 0.66, img)
    if task == "chest":
        if truth.get("Effusion"):
            side = rng.choice([-1, 1])
            cx, cy, a, b = an.lung(side)
            height = rng.uniform(0.08, 0.17)
            lateral = np.clip(side * (X - cx) / a, -1, 1)
            level = an.bottom - height - 0.05 * (lateral + 1)  # meniscus: higher at the chest wall
            fluid = an.lung_mask(X, Y, side) & (Y > level)
            img = np.where(fluid, np.maximum(img, 0.58 + 0.04 * ndimage.gaussian_filter(noise, 2)), img)
            ys, xs = np.nonzero(fluid)
            if len(xs):
                boxes["Effusion"] = (float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1))
        if truth.get("Nodule"):
            cx, cy, r = truth["_nodule"]
            img = img + 0.30 * _disc(X, Y, cx, cy, r) ** 0.7
            boxes["Nodule"] = ((cx - r) * s, (cy - r) * s, 2 * r * s, 2 * r * s)
    else:
        cls = truth["_class"]
        if cls == "Pneumonia":
            side = rng.choice([-1, 1])
            cx, cy, a, b = an.lung(side)
            py = rng.uniform(cy - 0.15, cy + 0.15)
            blob = np.exp(-(((X - cx) / (a * 0.6)) ** 2 + ((Y - py) / 0.12) ** 2) ** 2)
            img = img + 0.38 * blob * an.lung_mask(X, Y, side)
        elif cls == "COVID-19":
            for side in (-1, 1):
                cx, cy, a, b = an.lung(side)
                for _ in range(rng.integers(3, 6)):
                    px = cx + side * a * rng.uniform(0.45, 0.85)
                    py = rng.uniform(cy, an.bottom - 0.05)
                    rr = rng.uniform(0.04, 0.08)
                    img = img + 0.16 * np.exp(-((X - px) ** 2 + (Y - py) ** 2) / (rr * rr)) * an.lung_mask(X, Y, side)
    img = ndimage.gaussian_filter(img, s / 512.0)
    return img, boxes


def nodule_place(rng, an):
    side = rng.choice([-1, 1])
    cx, cy, a, b = an.lung(side)
    r = rng.uniform(0.028, 0.045)
    for _ in range(100):
        x = cx + rng.uniform(-0.7, 0.7) * a
        y = cy + rng.uniform(-0.7, 0.6) * b
        inside = (abs(x - cx) / (a - r)) ** 2.2 + (abs(y - cy) / (b - r)) ** 2.2 <= 1.0
        in_heart = ((x - an.heart_cx) / (an.heart_hw + r)) ** 2 + ((y - an.heart_cy) / (an.heart_hh + r)) ** 2 <= 1.0
        if inside and not in_heart:
            return x, y, r
    return cx, cy - 0.5 * b, r


def to_dicom(display, rng, path, meta):
    """Stores the display image as 12-bit pixels with one of the gateway's decoding paths."""
    s = display.shape[0]
    vendor, gamma, sigma = meta["vendor"]
    d = np.clip(display, 0, 1) ** gamma
    d = np.clip(d + rng.normal(0, sigma, d.shape), 0, 1)
    mode = meta["mode"]
    lo = rng.uniform(200, 600)
    span = rng.uniform(2800, 3400)
    mono1 = mode in ("mono1_window", "mono1_default")
    v = lo + (1 - d if mono1 else d) * span
    stored = np.clip(np.round(v), 0, 4095).astype(np.uint16)
    ds = Dataset()
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = DX_PRESENTATION
    fm.MediaStorageSOPInstanceUID = meta["sop"]
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    fm.ImplementationClassUID = UID_ROOT + "1"
    ds.file_meta = fm
    ds.SOPClassUID = DX_PRESENTATION
    ds.SOPInstanceUID = meta["sop"]
    ds.StudyInstanceUID = meta["study"]
    ds.SeriesInstanceUID = meta["series"]
    ds.Modality = "DX"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = meta["view"]
    ds.StudyDescription = "XR CHEST %s (SYNTHETIC)" % meta["view"]
    ds.PatientID = meta["patient"]
    ds.PatientName = "SYNTHETIC^" + meta["patient"]
    ds.PatientSex = meta["sex"]
    ds.PatientAge = "%03dY" % meta["age"]
    ds.StudyDate = meta["date"]
    ds.AccessionNumber = meta["accession"]
    ds.Manufacturer = vendor
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.BurnedInAnnotation = "NO"
    ds.Rows, ds.Columns = s, s
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if mono1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelSpacing = [0.4 * 1024 / s, 0.4 * 1024 / s]
    if mode in ("mono2_window", "mono1_window", "mono2_rescale"):
        if mode == "mono2_rescale":
            ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 2, -1000, "US"
            c, w = (lo + span / 2) * 2 - 1000, span * 2
        else:
            c, w = lo + span / 2, span
        ds.WindowCenter, ds.WindowWidth = "%.1f" % c, "%.1f" % w
        ds.VOILUTFunction = "LINEAR"
    ds.PixelData = stored.tobytes()
    ds.is_little_endian, ds.is_implicit_VR = True, False
    pydicom.dcmwrite(path, ds, write_like_original=False)


MODES = ["mono2_window", "mono2_window", "mono1_window", "mono2_default", "mono1_default", "mono2_rescale"]


def generate(out, patients=100, studies=(1, 4), size=256, seed=1, task="chest", readers=3, reader_error=0.07,
             prevalence=None, log=print):
    rng = np.random.default_rng(seed)
    os.makedirs(out, exist_ok=True)
    prev = dict(PREVALENCE, **(prevalence or {}))
    names = FINDINGS if task == "chest" else COVID3
    label_rows, truth_rows = [], []
    n = 0
    for p in range(patients):
        pid = "SYN%05d" % p
        sex = rng.choice(["M", "F"])
        age = int(rng.integers(20, 90))
        vendor = VENDORS[int(rng.integers(0, len(VENDORS)))]
        cardiomegaly = rng.random() < prev["Cardiomegaly"]
        chronic_nodule = rng.random() < prev["Nodule"] * 0.6
        pcls = rng.choice(COVID3, p=COVID3_SHARE)
        for st in range(int(rng.integers(studies[0], studies[1] + 1))):
            ctr = rng.uniform(0.55, 0.68) if (task == "chest" and cardiomegaly) else rng.uniform(0.38, 0.47)
            an = Anatomy(rng, ctr)
            truth = {}
            if task == "chest":
                truth["Cardiomegaly"] = bool(cardiomegaly)
                truth["Nodule"] = bool(chronic_nodule or rng.random() < prev["Nodule"] * 0.4)
                truth["Effusion"] = bool(rng.random() < prev["Effusion"])
                truth["Pneumothorax"] = bool(rng.random() < prev["Pneumothorax"])
                if truth["Nodule"]:
                    truth["_nodule"] = nodule_place(rng, an)
            else:
                cls = pcls if st == 0 else rng.choice(COVID3, p=COVID3_SHARE)
                truth["_class"] = cls
                for c in COVID3:
                    truth[c] = cls == c
            display, boxes = render(rng, size, truth, an, task)
            rel = "%s/study%d.dcm" % (pid, st + 1)
            os.makedirs(os.path.join(out, pid), exist_ok=True)
            meta = dict(patient=pid, sex=sex, age=age, vendor=vendor, view="PA" if rng.random() < 0.8 else "AP",
                        mode=MODES[int(rng.integers(0, len(MODES)))], date="2024%02d%02d" % (1 + st, 1 + p % 28),
                        accession="A%07d" % n, study=_uid(seed, pid, st, "study"), series=_uid(seed, pid, st, "series"),
                        sop=_uid(seed, pid, st, "sop"))
            to_dicom(display, rng, os.path.join(out, rel), meta)
            row = {"file": rel, "patient_id": pid}
            for f in names:
                t = int(truth[f])
                for r in range(1, readers + 1):
                    u = rng.random()
                    if u < 0.02:
                        v = ""  # this reader did not grade it
                    elif u < 0.02 + reader_error:
                        v = str(1 - t)
                    else:
                        v = str(t)
                    row["%s@r%d" % (f, r)] = v
                if f in boxes and task == "chest":
                    row[f + "_bbox"] = "%.1f,%.1f,%.1f,%.1f" % boxes[f]
            label_rows.append(row)
            truth_rows.append(dict({"file": rel, "patient_id": pid}, **{f: int(truth[f]) for f in names}))
            n += 1
    cols = ["file", "patient_id"] + ["%s@r%d" % (f, r) for f in names for r in range(1, readers + 1)]
    if task == "chest":
        cols += [f + "_bbox" for f in names]
    with open(os.path.join(out, "LABELS.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, cols, restval="")
        w.writeheader()
        w.writerows(label_rows)
    with open(os.path.join(out, "TRUTH.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, ["file", "patient_id"] + names)
        w.writeheader()
        w.writerows(truth_rows)
    log("synth: %d images of %d patients in %s (%s)" % (n, patients, out, task))
    return n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--studies", default="1-4", help="studies per patient, MIN-MAX")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--task", choices=["chest", "covid3"], default="chest")
    ap.add_argument("--readers", type=int, default=3)
    ap.add_argument("--reader-error", type=float, default=0.07)
    a = ap.parse_args(argv)
    lo, hi = (int(x) for x in a.studies.split("-"))
    generate(a.out, a.patients, (lo, hi), a.size, a.seed, a.task, a.readers, a.reader_error)


if __name__ == "__main__":
    main()
