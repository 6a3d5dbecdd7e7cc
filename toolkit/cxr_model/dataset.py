"""Labelled images: LABELS.csv rows decoded by the gateway's rules; unreadable or missing files are
listed and skipped with a count, never fatal."""
import hashlib
import os
import sys

import numpy as np

from . import decode, labels as labels_mod


class Item:
    __slots__ = ("file", "patient_id", "y", "boxes", "gray", "header", "line")

    def __init__(self, row, gray, header):
        self.file = row["file"]
        self.patient_id = row["patient_id"]
        self.y = row["y"]
        self.boxes = row["boxes"]
        self.line = row["line"]
        self.gray = gray
        self.header = header


def _inside(data_dir, rel):
    root = os.path.realpath(data_dir)
    path = os.path.realpath(os.path.join(root, rel))
    return path if path == root or path.startswith(root + os.sep) else None


def load(data_dir, lab, log=print, keep_pixels=True):
    """(items, skipped): skipped is a list of (line, file, reason)."""
    items, skipped = [], []
    for row in lab.rows:
        path = _inside(data_dir, row["file"])
        if path is None:
            skipped.append((row["line"], row["file"], "outside --data"))
            continue
        try:
            ds, gray = decode.read(path)
        except decode.Unreadable as e:
            skipped.append((row["line"], row["file"], str(e)))
            continue
        items.append(Item(row, gray if keep_pixels else None, decode.header(ds)))
    if skipped:
        log("skipped %d of %d files (unreadable or missing):" % (len(skipped), len(lab.rows)))
        for line, f, why in skipped[:50]:
            log("  line %d: %s: %s" % (line, f, why))
        if len(skipped) > 50:
            log("  ... and %d more" % (len(skipped) - 50))
    if not items:
        raise labels_mod.LabelError("no readable image among %d rows" % len(lab.rows))
    return items, skipped


def fingerprint(items, names):
    """sha256 over the files' contents and labels: names a data set, changes when anything in it changes."""
    h = hashlib.sha256()
    h.update(("|".join(names)).encode())
    for it in sorted(items, key=lambda i: i.file):
        h.update(it.file.encode())
        h.update(it.patient_id.encode())
        h.update(repr(it.y).encode())
        h.update(hashlib.sha256(it.gray.tobytes()).digest() if it.gray is not None else b"")
    return h.hexdigest()


def label_matrix(items):
    return np.array([[np.nan if v is None else float(v) for v in it.y] for it in items], np.float32)


def progress(done, total, start, now, extra="", stream=sys.stderr):
    frac = done / max(1, total)
    el = now - start
    eta = el / frac - el if frac > 0 else 0
    bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
    stream.write("\r  [%s] %d/%d  %5.1fs elapsed, ETA %5.1fs %s" % (bar, done, total, el, eta, extra))
    if done >= total:
        stream.write("\n")
    stream.flush()
