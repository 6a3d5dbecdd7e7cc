"""Label name -> (code value, scheme, meaning): the catalogue the demo and imported packages already use
(the 14 ChestX-ray14 findings, Normal / COVID-19, the TorchXRayVision extras), plus a site's own
codes from --codes FILE (CSV: name,value,scheme,meaning)."""
import csv

import import_weights  # noqa: F401  (src/main/python, on the path via cxr_model/__init__)
import make_demo_models

SCHEMES = ("SCT", "DCM", "LN", "99CXR")  # manifest.schema.json


class CodeError(ValueError):
    pass


def builtin():
    cat = {n: (v, s, m) for (n, v, s, m) in make_demo_models.CHEST14}
    cat.update({n: (v, s, m) for (n, v, s, m) in make_demo_models.COVID3})
    cat.update(import_weights.CODES)
    return cat


def catalogue(codes_file=None):
    cat = builtin()
    if codes_file:
        with open(codes_file, newline="", encoding="utf-8") as f:
            for lineno, row in enumerate(csv.reader(f), start=1):
                if not row or row[0].startswith("#") or (lineno == 1 and row[0].strip().lower() == "name"):
                    continue
                if len(row) != 4:
                    raise CodeError("%s line %d: want name,value,scheme,meaning, got %d fields" % (codes_file, lineno, len(row)))
                name, value, scheme, meaning = (x.strip() for x in row)
                if scheme not in SCHEMES:
                    raise CodeError("%s line %d: scheme %r is not one of %s" % (codes_file, lineno, scheme, ", ".join(SCHEMES)))
                if not name or not value or len(value) > 16 or not meaning or len(meaning) > 64:
                    raise CodeError("%s line %d: need a name, a code value of 1-16 characters and a meaning of 1-64" % (codes_file, lineno))
                cat[name] = (value, scheme, meaning)
    return cat


def lookup(cat, name, where):
    if name not in cat:
        raise CodeError("%s: label %r has no code; add it with --codes FILE (name,value,scheme,meaning)" % (where, name))
    return cat[name]
