"""cxr-model validate: score a labelled set with the gateway's own Java inference path (the `score`
command: same decoder, preprocessor, ONNX Runtime session and Grad-CAM as the workers; no Python at
inference), then report per label AUROC (DeLong and patient-bootstrap CIs), operating point with
Wilson CIs, Youden threshold, ECE, pointing game, subgroups, plots and an HTML page."""
import csv
import html
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from . import NOT_FOR_DIAGNOSTIC_USE, codes, dataset, labels as labels_mod, metrics

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SUBGROUPS = (("view", "View position"), ("sex", "Patient sex"), ("manufacturer", "Manufacturer"))
MIN_SUBGROUP = 10


def add_arguments(ap):
    ap.add_argument("--package", required=True, help="model package folder")
    ap.add_argument("--data", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--out", required=True, help="report folder (report.json, scores.csv, index.html, PNG plots)")
    ap.add_argument("--write-thresholds", help="youden or sensitivity=0.9: writes a copy of the package with these thresholds")
    ap.add_argument("--package-out", help="where --write-thresholds or --write-margin writes the package copy (default REPORT_DIR/package)")
    ap.add_argument("--subset", choices=["train", "validation", "test"],
                    help="only the patients of this set of the package's training split (training.json)")
    ap.add_argument("--codes", help="CSV name,value,scheme,meaning adding label codes")
    ap.add_argument("--bootstrap", type=int, default=1000, help="patient-level bootstrap resamples (default 1000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jar", default=os.environ.get("CXR_GATEWAY_JAR", os.path.join(ROOT, "target", "quarkus-app", "quarkus-run.jar")),
                    help="the gateway (default target/quarkus-app/quarkus-run.jar; build with mvn -o -DskipTests package)")
    ap.add_argument("--precision", choices=["fp32", "int8"], default="fp32",
                    help="which variant of the package the gateway runs (cxr.inference.precision; int8 needs model.int8.onnx: "
                         "cxr-model quantize)")
    ap.add_argument("--int8-decision-margin", type=float, default=None, metavar="MARGIN",
                    help="with --precision int8: cxr.inference.int8-decision-margin, the images with a score this close to a "
                         "threshold (log-odds) scored again at fp32 (default: the gateway's, the package's measured margin "
                         "(--write-margin), else 0.5; 0: the INT8 variant alone)")
    ap.add_argument("--write-margin", action="store_true",
                    help="with --precision int8: measure the INT8 variant's decision margin on this set (scored at fp32 and by the "
                         "variant alone; twice its largest log-odds error near the thresholds) and write a copy of the package "
                         "with it (manifest int8.decisionMargin, which the gateway's decision guard then uses; --package-out); "
                         "the report's figures are then those of the variant guarded at that margin")
    ap.add_argument("--java", default="java")
    ap.add_argument("--java-timeout", type=float, default=3600)
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--save-cams", action="store_true",
                    help="also write cams.npz: each image's raw Grad-CAM per label as the gateway computed it (files, labels, "
                         "cams [images, labels, h, w], NaN where none), e.g. to compare two runs (int8-auroc.sh)")
    ap.add_argument("--pointing-tolerance", type=float, default=15.0,
                    help="pointing game: a Grad-CAM peak this many model-input pixels outside the box still hits "
                         "(default 15, Zhang et al. 2016; 0 = strictly inside). The strict count is reported too")


def gateway_scores(a, manifest, files, work, with_cams, precision, margin):
    """{file: (probabilities by label, cam peaks by label)}, the files the gateway did not score, the seconds it took and,
    at int8 with a decision margin, its decision guard's figures (margin, refereedImages), else None. margin: the
    cxr.inference.int8-decision-margin to set, or None for the gateway's (the package's measured one, else 0.5)."""
    if not os.path.exists(a.jar):
        raise SystemExit("validate: the gateway jar %s is missing: build it with mvn -o -q -DskipTests package" % a.jar)
    pkgs = os.path.join(work, "packages")
    copy = os.path.join(pkgs, manifest["id"])
    shutil.copytree(a.package, copy, ignore=shutil.ignore_patterns("*.work", "training.json"))
    m = json.loads(pathlib.Path(copy, "manifest.json").read_text())
    # every label's probability, not only the reported findings' (so at int8 the decision guard reads every label too)
    m.pop("reportedLabels", None)
    write_manifest(copy, m)
    out = os.path.join(work, "scores.json")
    listfile = [os.path.abspath(f) for f in files]
    if precision == "int8" and "int8" not in m:
        raise SystemExit("validate: --precision int8: the package %s has no INT8 variant (cxr-model quantize makes one)" % a.package)
    cmd = [a.java, "-Xmx2g", "-Dcxr.inference.packages-dir=" + pkgs, "-Dquarkus.log.level=WARN",
           "-Dcxr.inference.precision=" + precision]
    if margin is not None:
        cmd.append("-Dcxr.inference.int8-decision-margin=%r" % margin)
    # every finding's Grad-CAM, negative ones too, at the package's own thresholds (they decide positives and, at int8,
    # which images the decision guard scores again)
    cmd += ["-jar", os.path.abspath(a.jar), "score", "--json", out, "--no-reports"] + (["--cams-for-every-label"] if with_cams else []) + listfile
    t0 = time.time()
    p = subprocess.run(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=a.java_timeout)
    if not os.path.exists(out):
        tail = p.stdout.decode("utf-8", "replace")[-3000:]
        raise SystemExit("validate: the gateway's score command failed (exit %d):\n%s" % (p.returncode, tail))
    res = json.loads(pathlib.Path(out).read_text())
    by_file = {}
    for im in res["images"]:
        for run in im["runs"]:
            if run["modelId"] != manifest["id"]:
                continue
            probs = {f["label"]: f["probability"] for f in run["findings"]}
            peaks = {f["label"]: (f["camPeak"]["x"], f["camPeak"]["y"]) for f in run["findings"] if "camPeak" in f}
            by_file[os.path.realpath(im["file"])] = (probs, peaks, run)
    return by_file, res["notScored"], time.time() - t0, res.get("int8DecisionGuard", {}).get(manifest["id"])


def save_cams(path, scored, names, by_file, data):
    """cams.npz (see --save-cams): the raw Grad-CAMs of the gateway's score output, one grid size per package."""
    maps = {}
    for i, it in enumerate(scored):
        for f in by_file[os.path.realpath(os.path.join(data, it.file))][2]["findings"]:
            if "cam" in f and f["label"] in names:
                maps[i, names.index(f["label"])] = np.array(f["cam"]["values"], np.float32).reshape(f["cam"]["height"], f["cam"]["width"])
    h, w = next(iter(maps.values())).shape if maps else (0, 0)
    cams = np.full((len(scored), len(names), h, w), np.nan, np.float32)
    for (i, j), m in maps.items():
        cams[i, j] = m
    np.savez_compressed(path, files=np.array([it.file for it in scored]), labels=np.array(names), cams=cams)


def run(a, log=print):
    manifest = json.loads(pathlib.Path(a.package, "manifest.json").read_text())
    names = [l["name"] for l in manifest["labels"]]
    cat = codes.catalogue(a.codes)
    for l in manifest["labels"]:
        cat.setdefault(l["name"], (l["code"]["value"], l["code"]["scheme"], l["code"]["meaning"]))
    with open(a.labels, encoding="utf-8-sig") as f:
        header = f.readline().strip().split(",")
    present = {h.split("@")[0] for h in header}
    only = [n for n in names if n in present]
    if not only:
        raise labels_mod.LabelError("%s line 1: no column for any of the package's labels (%s)" % (a.labels, ", ".join(names)))
    lab = labels_mod.read(a.labels, cat, only)
    if a.subset:
        rec = json.loads(pathlib.Path(a.package, "training.json").read_text())
        keep = set(rec["split"]["patients"][a.subset])
        lab.rows = [r for r in lab.rows if r["patient_id"] in keep]
        log("subset %s of the package's split: %d images" % (a.subset, len(lab.rows)))
        if not lab.rows:
            raise labels_mod.LabelError("no rows of the %s set in %s" % (a.subset, a.labels))
    items, skipped = dataset.load(a.data, lab, log=log, keep_pixels=False)
    has_boxes = any(it.boxes for it in items)
    os.makedirs(a.out, exist_ok=True)
    precision, margin = getattr(a, "precision", "fp32"), getattr(a, "int8_decision_margin", None)
    if getattr(a, "write_margin", False):
        if precision != "int8":
            raise SystemExit("validate: --write-margin measures an INT8 variant's margin: add --precision int8")
        if a.write_thresholds:
            raise SystemExit("validate: --write-margin measures the margin at the package's thresholds: write the thresholds "
                             "first, then measure the margin on the package with them")
        if margin is not None:
            raise SystemExit("validate: --write-margin measures the margin: leave --int8-decision-margin out")
    work = tempfile.mkdtemp(prefix="cxr-validate-")
    measured = None
    try:
        files = [os.path.join(a.data, it.file) for it in items]
        if getattr(a, "write_margin", False):
            passes = {}
            for name, prec, m in (("fp32", "fp32", None), ("int8-alone", "int8", 0)):
                log("measuring the INT8 decision margin: scoring %d images at %s" % (len(files), name))
                passes[name] = gateway_scores(a, manifest, files, os.path.join(work, name), False, prec, m)[0]
            measured = measure_margin(manifest, passes["fp32"], passes["int8-alone"])
            margin = measured["margin"]
            log("INT8 variant against FP32 on %d images: largest log-odds error of the %d scores near their thresholds %.3f, "
                "%d decisions flipped by the variant alone: decision margin %g" % (
                    measured["images"], measured["pairsNearThresholds"], measured["logOddsError"], measured["flipsAlone"], margin))
        log("scoring %d images with the gateway (%s)" % (len(files), a.jar))
        by_file, not_scored, secs, guard = gateway_scores(a, manifest, files, os.path.join(work, "scores"), has_boxes, precision, margin)
        if measured is not None:
            # what the guard served at that margin, against FP32: none flips on this set, by the margin's construction
            measured["flipsGuarded"] = decisions_flipped(manifest, passes["fp32"], by_file)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log("gateway scored %d images in %.1f s" % (len(by_file), secs))
    if guard:
        log("INT8 decision guard: %d of %d images had a score within %g (log-odds) of a threshold and were scored again at fp32" % (
            guard["refereedImages"], len(by_file), guard["margin"]))
    for ns in not_scored:
        log("  not scored by the gateway: %s: %s" % (ns["file"], ns["reason"]))
    scored = [it for it in items if os.path.realpath(os.path.join(a.data, it.file)) in by_file]
    P = np.array([[by_file[os.path.realpath(os.path.join(a.data, it.file))][0].get(n, np.nan) for n in only] for it in scored], np.float64)
    Y = dataset.label_matrix(scored)
    groups = np.array([it.patient_id for it in scored])
    thresholds = {l["name"]: l["threshold"] for l in manifest["labels"]}
    report = {"package": {"id": manifest["id"], "version": manifest["version"], "diagnostic": manifest["diagnostic"],
                          "intendedUse": manifest["intendedUse"]},
              "notice": "" if manifest["diagnostic"] else "AI - " + NOT_FOR_DIAGNOSTIC_USE,
              "scoredBy": "gateway score command (Java, ONNX Runtime, %s)" % getattr(a, "precision", "fp32"), "labelsFile": os.path.abspath(a.labels),
              "subset": a.subset, "images": len(scored), "patients": int(len(set(groups))), "int8DecisionGuard": guard,
              "skipped": [{"line": l, "file": f, "reason": r} for (l, f, r) in skipped] +
                         [{"file": ns["file"], "reason": ns["reason"]} for ns in not_scored],
              "labels": [], "subgroups": {}}
    report["skippedCount"] = len(report["skipped"])
    curves = {}
    for j, n in enumerate(only):
        k = ~np.isnan(Y[:, j]) & ~np.isnan(P[:, j])
        y, p, g = Y[k, j].astype(int), P[k, j], groups[k]
        entry = {"name": n, "n": int(k.sum()), "prevalence": float(y.mean()) if k.sum() else None}
        if k.sum() and (y.sum() == 0 or y.sum() == len(y)):
            log("warning: %s has no %s in this set: no AUROC for it" % (n, "positives" if y.sum() == 0 else "negatives"))
            entry["warning"] = "no %s: no AUROC" % ("positives" if y.sum() == 0 else "negatives")
        d = metrics.delong_ci(y, p)
        entry["auroc"] = None if d is None else d[0]
        entry["auroc_ci"] = None if d is None else [d[1], d[2]]
        entry["auroc_ci_bootstrap"] = metrics.bootstrap_ci(y, p, g, a.bootstrap, a.seed) if d is not None else None
        if entry["auroc_ci_bootstrap"] is not None:
            entry["auroc_ci_bootstrap"] = list(entry["auroc_ci_bootstrap"])
        entry["threshold"] = thresholds[n]
        entry.update(metrics.operating_point(y, p, thresholds[n]))
        entry["youden_threshold"] = metrics.youden_threshold(y, p)
        e, table = metrics.ece(y, p) if len(y) else (None, [])
        entry["ece"] = e
        entry["reliability"] = table
        boxed = [(it, it.boxes[n]) for it, kk in zip(scored, ~np.isnan(Y[:, j])) if kk and n in it.boxes and it.y[j] == 1]
        if boxed:
            hits, strict, total = 0, 0, 0
            for it, box in boxed:
                peaks = by_file[os.path.realpath(os.path.join(a.data, it.file))][1]
                if n not in peaks:
                    continue
                total += 1
                peak = (peaks[n][0] * it.header["columns"], peaks[n][1] * it.header["rows"])
                # the tolerance is stated in model-input pixels: one model-input pixel spans this many source pixels
                per_input_pixel = min(it.header["columns"], it.header["rows"]) / float(manifest["input"]["size"])
                hits += metrics.pointing_hit(peak, box, a.pointing_tolerance * per_input_pixel)
                strict += metrics.pointing_hit(peak, box, 0.0)
            if total:
                w, ws = metrics.wilson(hits, total), metrics.wilson(strict, total)
                entry["pointing_game"] = {"value": w[0], "ci": [w[1], w[2]], "hits": hits, "n": total,
                                          "tolerance_model_pixels": a.pointing_tolerance,
                                          "strict": {"value": ws[0], "ci": [ws[1], ws[2]], "hits": strict}}
        report["labels"].append(entry)
        curves[n] = (y, p)
    for key, title in SUBGROUPS:
        values = sorted({it.header[key] or "(absent)" for it in scored})
        if len(values) < 2:
            continue
        sub = {}
        for v in values:
            sel = np.array([(it.header[key] or "(absent)") == v for it in scored])
            if sel.sum() < MIN_SUBGROUP:
                sub[v] = {"n": int(sel.sum()), "note": "fewer than %d images" % MIN_SUBGROUP}
                continue
            per = {}
            for j, n in enumerate(only):
                k = sel & ~np.isnan(Y[:, j])
                d = metrics.delong_ci(Y[k, j].astype(int), P[k, j])
                per[n] = {"n": int(k.sum()), "positives": int(np.nansum(Y[k, j])),
                          "auroc": None if d is None else d[0], "auroc_ci": None if d is None else [d[1], d[2]]}
            sub[v] = {"n": int(sel.sum()), "labels": per}
        report["subgroups"][key] = sub
    if a.write_thresholds:
        report["writtenPackage"] = write_thresholds(a, manifest, report, curves, log)
    if measured is not None:
        report["int8Margin"] = measured
        report["writtenPackage"] = write_margin(a, manifest, report, measured, log)
    with open(os.path.join(a.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    if a.save_cams:
        save_cams(os.path.join(a.out, "cams.npz"), scored, only, by_file, a.data)
    # each image's probabilities as the gateway gave them, for audits and for comparing two runs (int8-auroc.sh)
    with open(os.path.join(a.out, "scores.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "patient_id"] + only)
        for it, row in zip(scored, P):
            w.writerow([it.file, it.patient_id] + ["" if np.isnan(v) else repr(float(v)) for v in row])
    plots = {} if a.no_plots else make_plots(a.out, curves, report)
    write_html(a.out, report, plots)
    for e in report["labels"]:
        log("%-20s n %4d  prevalence %.3f  AUROC %s  ECE %s%s" % (
            e["name"], e["n"], e["prevalence"] or 0, "n/a" if e["auroc"] is None else "%.3f [%.3f, %.3f]" % (e["auroc"], *e["auroc_ci"]),
            "n/a" if e["ece"] is None else "%.3f" % e["ece"],
            "  pointing game %s" % _pointing(e["pointing_game"]) if "pointing_game" in e else ""))
    log("wrote %s" % os.path.join(a.out, "report.json"))
    return report


def write_thresholds(a, manifest, report, curves, log):
    method = a.write_thresholds.strip()
    target = None
    if method.startswith("sensitivity="):
        target = float(method.split("=", 1)[1])
        if not 0 < target <= 1:
            raise SystemExit("--write-thresholds sensitivity=S needs 0 < S <= 1")
    elif method != "youden":
        raise SystemExit("--write-thresholds: youden or sensitivity=S")
    chosen = {}
    out, m = package_copy(a)
    by_name = {e["name"]: e for e in report["labels"]}
    for l in m["labels"]:
        e = by_name.get(l["name"])
        if e is None:
            continue
        if target is None:
            t = e["youden_threshold"]
        else:
            y, p = curves[l["name"]]
            t = metrics.sensitivity_threshold(y, p, target) if e["auroc"] is not None else None
        if t is None:
            log("  %s: no threshold from this set (needs positives and negatives); kept %.4f" % (l["name"], l["threshold"]))
            continue
        chosen[l["name"]] = {"from": l["threshold"], "to": float(t)}
        l["threshold"] = float(min(1.0, max(0.0, t)))
    m["provenance"] = dict(m.get("provenance", {}))
    m["provenance"]["thresholds"] = {
        "method": method, "tool": "cxr-model validate", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "labelsFile": os.path.abspath(a.labels), "subset": a.subset, "images": report["images"],
        "scoredBy": report["scoredBy"], "sourcePackage": {"id": manifest["id"], "version": manifest["version"]},
        "changes": chosen}
    m["version"] = (manifest["version"] + "+thr")[:64]
    write_manifest(out, m)
    log("wrote package %s with %s thresholds: %s" % (out, method, ", ".join("%s %.4f" % (k, v["to"]) for k, v in chosen.items())))
    return {"path": os.path.abspath(out), "method": method, "thresholds": chosen}


def package_copy(a):
    """A fresh copy of the package where --package-out (default REPORT_DIR/package) says, and its manifest to edit."""
    out = a.package_out or os.path.join(a.out, "package")
    if os.path.exists(out):
        shutil.rmtree(out)
    shutil.copytree(a.package, out, ignore=shutil.ignore_patterns("*.work"))
    return out, json.loads(pathlib.Path(out, "manifest.json").read_text())


def write_manifest(folder, m):
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(m, f, indent=2)
        f.write("\n")


# --write-margin: the decision margin is this many times the variant's largest log-odds error measured near the thresholds.
# The error's maximum is a sample's: on the trained 128² DenseNet-121 of train-bench.sh it was 0.205 on the validation set
# and 0.374 on the test set (int8-auroc.sh, 2026-12-07), 1.8 times as much on images the measurement had not seen.
MARGIN_FACTOR = 2.0
# the scores whose error counts: within this many log-odds of their threshold at FP32 or at INT8. A score further away
# decides nothing the margin could guard, and the log-odds of a saturated score (p near 0 or 1) magnify its rounding.
MARGIN_WINDOW = 4.0
# DecisionGuard.MAX_MARGIN and the manifest schema's bound
MAX_MARGIN = 10.0


def log_odds(p):
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p)


def reported_pairs(manifest, first, second):
    """(threshold, first probability, second probability) of each reported label of each image both scorings ({file:
    (probabilities by label, ...)}) have: what a decision is taken on."""
    thr = {l["name"]: l["threshold"] for l in manifest["labels"]}
    reported = set(manifest.get("reportedLabels") or thr)
    for f, (p1, _, _) in first.items():
        p2 = second[f][0] if f in second else {}
        for n in reported:
            if n in p1 and n in p2:
                yield thr[n], p1[n], p2[n]


def measure_margin(manifest, fp32, alone):
    """The INT8 decision margin from the same images scored at FP32 and by the INT8 variant alone: MARGIN_FACTOR times
    the largest log-odds error among the scores within MARGIN_WINDOW of their threshold, and beyond the distance from its
    threshold of any INT8 score whose decision differs from FP32's (so that no decision of this set flips under the
    guard), rounded up to 0.01."""
    errors, flipped_at, pairs = [], [], 0
    for t, pf, pq in reported_pairs(manifest, fp32, alone):
        pairs += 1
        lt, lf, lq = log_odds(t), log_odds(pf), log_odds(pq)
        if min(abs(lf - lt), abs(lq - lt)) < MARGIN_WINDOW:
            errors.append(abs(lq - lf))
        if (pf >= t) != (pq >= t):
            flipped_at.append(abs(lq - lt))
    if not errors:
        raise SystemExit("validate: --write-margin: no score of this set lies within %g log-odds of its threshold, so the "
                         "variant's error near the thresholds cannot be measured on it" % MARGIN_WINDOW)
    e = float(max(errors))
    need = max(MARGIN_FACTOR * e, max(flipped_at, default=0.0) + 0.01)
    margin = float(min(MAX_MARGIN, max(0.01, np.ceil(need * 100 - 1e-9) / 100)))
    return {"margin": margin, "logOddsError": e, "factor": MARGIN_FACTOR, "window": MARGIN_WINDOW,
            "pairsNearThresholds": len(errors), "pairs": pairs, "images": len(set(fp32) & set(alone)),
            "flipsAlone": len(flipped_at), "largestFlippedDistance": float(max(flipped_at)) if flipped_at else None}


def decisions_flipped(manifest, fp32, other):
    """The reported image-label pairs whose decision at the package's thresholds differs between two scorings."""
    return sum((p1 >= t) != (p2 >= t) for t, p1, p2 in reported_pairs(manifest, fp32, other))


def write_margin(a, manifest, report, measured, log):
    """A copy of the package whose manifest carries the measured margin (int8.decisionMargin) and what it rests on."""
    out, m = package_copy(a)
    m["int8"]["decisionMargin"] = measured["margin"]
    m["int8"]["decisionMarginBasis"] = {
        "tool": "cxr-model validate --write-margin", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "labelsFile": os.path.abspath(a.labels), "subset": a.subset, "images": measured["images"],
        "logOddsError": measured["logOddsError"], "factor": measured["factor"], "window": measured["window"],
        "pairsNearThresholds": measured["pairsNearThresholds"], "flipsAlone": measured["flipsAlone"]}
    m["version"] = (manifest["version"] + "+int8m")[:64]
    write_manifest(out, m)
    log("wrote package %s with the INT8 decision margin %g" % (out, measured["margin"]))
    return {"path": os.path.abspath(out), "int8DecisionMargin": measured["margin"]}


def make_plots(out, curves, report):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    files = {}
    for n, (y, p) in curves.items():
        if len(y) == 0 or y.sum() == 0 or y.sum() == len(y):
            continue
        safe = "".join(c if c.isalnum() else "_" for c in n)
        fpr, tpr = metrics.roc_curve(y, p)
        fig, ax = plt.subplots(figsize=(4, 4), dpi=90)
        ax.plot(fpr, tpr, lw=1.5)
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC %s (AUROC %.3f)" % (n, metrics.auroc(y, p)))
        fig.tight_layout()
        fig.savefig(os.path.join(out, "roc_%s.png" % safe))
        plt.close(fig)
        rec, prec = metrics.pr_curve(y, p)
        fig, ax = plt.subplots(figsize=(4, 4), dpi=90)
        ax.plot(rec, prec, lw=1.5)
        ax.axhline(y.mean(), ls=":", color="grey")
        ax.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title="PR %s" % n, xlim=(0, 1), ylim=(0, 1.02))
        fig.tight_layout()
        fig.savefig(os.path.join(out, "pr_%s.png" % safe))
        plt.close(fig)
        files[n] = ("roc_%s.png" % safe, "pr_%s.png" % safe)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=90)
    ax.plot([0, 1], [0, 1], ":", color="grey")
    for e in report["labels"]:
        pts = [(b["confidence"], b["observed"]) for b in e["reliability"] if b["n"]]
        if pts:
            ax.plot(*zip(*pts), "o-", ms=3, label="%s (ECE %.3f)" % (e["name"], e["ece"]))
    ax.set(xlabel="mean predicted probability", ylabel="observed frequency", title="Reliability", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "reliability.png"))
    plt.close(fig)
    files["_reliability"] = "reliability.png"
    return files


def _fmt(v, ci=None):
    if v is None:
        return "n/a"
    s = "%.3f" % v
    if ci:
        s += " [%.3f, %.3f]" % tuple(ci)
    return s


def _pointing(pg):
    return "%.3f (%d/%d within %g model-input px; strictly inside %d/%d)" % (
        pg["value"], pg["hits"], pg["n"], pg["tolerance_model_pixels"], pg["strict"]["hits"], pg["n"])


def _op(d):
    return "n/a" if d is None else "%.3f [%.3f, %.3f] (%d/%d)" % (d["value"], d["ci"][0], d["ci"][1], d["k"], d["n"])


def write_html(out, report, plots):
    e = html.escape
    rows = []
    for x in report["labels"]:
        pg = x.get("pointing_game")
        rows.append("<tr><td>%s</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
            e(x["name"]), x["n"], _fmt(x["prevalence"]), _fmt(x["auroc"], x["auroc_ci"]), _fmt(None) if x["auroc_ci_bootstrap"] is None else "[%.3f, %.3f]" % tuple(x["auroc_ci_bootstrap"]),
            _fmt(x["threshold"]), _op(x["sensitivity"]), _op(x["specificity"]), _op(x["ppv"]), _op(x["npv"]),
            _fmt(x["youden_threshold"]), _fmt(x["ece"]), "n/a" if pg is None else e(_pointing(pg))))
    subs = []
    for key, groups in report["subgroups"].items():
        for v, d in groups.items():
            cells = "".join("<td>%s</td>" % (_fmt(l["auroc"], l["auroc_ci"]) + " (n %d, %d+)" % (l["n"], l["positives"])) for l in d.get("labels", {}).values())
            subs.append("<tr><td>%s</td><td>%s</td><td>%d</td>%s</tr>" % (e(key), e(v), d["n"], cells or "<td colspan=9>%s</td>" % e(d.get("note", ""))))
    imgs = "".join("<figure><img src='%s'><img src='%s'></figure>" % v for k, v in plots.items() if not k.startswith("_"))
    if "_reliability" in plots:
        imgs += "<figure><img src='%s'></figure>" % plots["_reliability"]
    names = "".join("<th>%s</th>" % e(x["name"]) for x in report["labels"])
    page = """<!doctype html><html><head><meta charset="utf-8"><title>Validation: %(id)s %(ver)s</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #bbb;padding:3px 6px}
.warn{background:#fee;border:2px solid #c00;padding:.5em;font-weight:bold}figure{display:inline-block;margin:4px}</style></head><body>
<h1>Validation of %(id)s %(ver)s</h1>
<p class="warn">%(notice)s</p>
<p>%(images)d images of %(patients)d patients, scored by the %(by)s; %(skipped)d files skipped. Labels: %(labels)s.</p>
<table><tr><th>label</th><th>n</th><th>prevalence</th><th>AUROC [DeLong 95%%]</th><th>patient bootstrap 95%%</th><th>threshold</th>
<th>sensitivity [Wilson]</th><th>specificity</th><th>PPV</th><th>NPV</th><th>Youden threshold</th><th>ECE</th><th>pointing game</th></tr>%(rows)s</table>
<h2>Subgroups (from the DICOM headers)</h2><table><tr><th>attribute</th><th>value</th><th>images</th>%(names)s</tr>%(subs)s</table>
<h2>Plots</h2>%(imgs)s
</body></html>""" % {"id": e(report["package"]["id"]), "ver": e(report["package"]["version"]),
                     "notice": e(report["notice"] or "Diagnostic package: check its clearance."), "images": report["images"],
                     "patients": report["patients"], "by": e(report["scoredBy"]), "skipped": report["skippedCount"],
                     "labels": e(report["labelsFile"]), "rows": "".join(rows), "names": names, "subs": "".join(subs), "imgs": imgs}
    with open(os.path.join(out, "index.html"), "w", encoding="utf-8") as f:
        f.write(page)
