"""LABELS.csv: file, patient_id, one column per finding (1, 0 or empty = unknown), optional readers'
columns Finding@reader reduced by majority vote (a tie is unknown: the lecture's consensus ground
truth), optional Finding_bbox "x,y,w,h" in source pixels. Errors name the line and the column."""
import csv
import math
import re
from collections import OrderedDict

from . import codes

RESERVED = ("file", "patient_id")
OPTIONAL = ("study_id",)
MAX_ROWS = 2_000_000


class LabelError(ValueError):
    pass


class Labels:
    """names: finding names in column order; rows: dicts with file, patient_id, y (list of 1/0/None),
    boxes ({name: (x, y, w, h)}), line (1-based CSV line)."""

    def __init__(self, names, rows, codes_by_name):
        self.names = names
        self.rows = rows
        self.codes = codes_by_name


def vote(values):
    """Majority of the readers who gave a label (1/0); None when nobody did or on a tie."""
    given = [v for v in values if v is not None]
    pos = sum(given)
    neg = len(given) - pos
    if pos == neg:
        return None
    return 1 if pos > neg else 0


def _value(text, line, column):
    t = text.strip()
    if t == "":
        return None
    if t in ("1", "1.0"):
        return 1
    if t in ("0", "0.0"):
        return 0
    raise LabelError("line %d, column %r: value %r is not 1, 0 or empty" % (line, column, text))


def _box(text, line, column):
    t = text.strip()
    if t == "":
        return None
    parts = t.split(",")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        vals = []
    if len(vals) != 4 or any(not math.isfinite(v) for v in vals) or vals[2] <= 0 or vals[3] <= 0:
        raise LabelError("line %d, column %r: box %r is not x,y,w,h with w, h > 0" % (line, column, text))
    return tuple(vals)


def read(path, catalogue, only=None):
    """Parses and checks the whole file; the first problem raises LabelError naming the line and column."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise LabelError("%s: empty file" % path)
        header = [h.strip() for h in header]
        for col in RESERVED:
            if col not in header:
                raise LabelError("%s line 1: missing column %r" % (path, col))
        if len(set(header)) != len(header):
            dup = sorted({h for h in header if header.count(h) > 1})
            raise LabelError("%s line 1: duplicate column(s) %s" % (path, ", ".join(dup)))
        direct, readers, boxes = OrderedDict(), OrderedDict(), {}
        for i, h in enumerate(header):
            if h in RESERVED or h in OPTIONAL:
                continue
            if h.endswith("_bbox"):
                boxes[h[:-5]] = i
            elif "@" in h:
                name, reader_id = h.split("@", 1)
                if not name or not reader_id:
                    raise LabelError("%s line 1: column %r is not Finding@reader" % (path, h))
                readers.setdefault(name, []).append(i)
            elif h == "" or not re.match(r"^[A-Za-z0-9][A-Za-z0-9 _()/+.-]*$", h):
                raise LabelError("%s line 1: column %d %r is not a finding name" % (path, i + 1, h))
            else:
                direct[h] = i
        both = set(direct) & set(readers)
        if both:
            raise LabelError("%s line 1: %s given both as a consensus column and as readers' columns" % (path, ", ".join(sorted(both))))
        names = list(direct) + [n for n in readers if n not in direct]
        for b in boxes:
            if b not in names:
                raise LabelError("%s line 1: column %r has no finding column %r" % (path, b + "_bbox", b))
        if only:
            missing = [n for n in only if n not in names]
            if missing:
                raise LabelError("%s line 1: no column for label(s) %s" % (path, ", ".join(missing)))
            names = list(only)
        if not names:
            raise LabelError("%s line 1: no finding columns" % path)
        code_map = {n: codes.lookup(catalogue, n, "%s line 1, column %r" % (path, n)) for n in names}
        rows = []
        seen = set()
        fi, pi = header.index("file"), header.index("patient_id")
        for line, rec in enumerate(reader, start=2):
            if not rec or all(not x.strip() for x in rec):
                continue
            if len(rows) >= MAX_ROWS:
                raise LabelError("%s line %d: more than %d rows" % (path, line, MAX_ROWS))
            if len(rec) != len(header):
                raise LabelError("%s line %d: %d fields, the header has %d" % (path, line, len(rec), len(header)))
            file, patient = rec[fi].strip(), rec[pi].strip()
            if not file:
                raise LabelError("%s line %d, column 'file': empty" % (path, line))
            if not patient:
                raise LabelError("%s line %d, column 'patient_id': empty" % (path, line))
            if file in seen:
                raise LabelError("%s line %d, column 'file': %s listed twice" % (path, line, file))
            seen.add(file)
            y, bx = [], {}
            for n in names:
                if n in direct:
                    y.append(_value(rec[direct[n]], line, n))
                else:
                    y.append(vote([_value(rec[i], line, header[i]) for i in readers[n]]))
                if n in boxes:
                    b = _box(rec[boxes[n]], line, n + "_bbox")
                    if b is not None:
                        bx[n] = b
            rows.append({"file": file, "patient_id": patient, "y": y, "boxes": bx, "line": line})
    if not rows:
        raise LabelError("%s: no data rows" % path)
    return Labels(names, rows, code_map)
