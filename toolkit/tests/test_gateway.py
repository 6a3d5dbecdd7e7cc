"""A package written by the toolkit loads in the gateway, and `score --json` (Java decoder, preprocessor,
ONNX Runtime) gives PyTorch's probabilities on the same DICOM files within 2e-3. The head is scaled on the
test images (spread_head) so probabilities spread widely: an untrained head would hide decoding or preprocessing errors.
Needs target/quarkus-app/quarkus-run.jar (skipped without it unless CXR_REQUIRE_JAR=1)."""
import argparse
import csv
import json
import math
import os
import pathlib
import subprocess
import sys
import unittest

import numpy as np
import torch

from cxr_model import decode, preprocess, synth, train  # noqa: I001 (puts src/main/python on the path)
import cxr_models  # noqa: E402

from .workdir import workdir

# the one head-spreading rule of the fidelity tests (src/test/python/spread_head.py), on a torch model here
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "test", "python"))
import spread_head as spread_head_tool  # noqa: E402

JAR = os.environ.get("CXR_GATEWAY_JAR", os.path.join(os.path.dirname(__file__), "..", "..", "target", "quarkus-app", "quarkus-run.jar"))


def spread_head(model, x, sd=2.5):
    """Rescales the head so that each label's logit has standard deviation sd and mean 0 over these inputs:
    probabilities then spread across the images whatever the input scale, and a preprocessing error shows."""
    with torch.no_grad():
        _, f = model(x)
        pooled = f.mean(dim=(2, 3)).double().numpy()  # f is the rectified feature map the head pools
        w, b = spread_head_tool.spread(pooled, model.classifier.weight.double().numpy(), sd)
        model.classifier.weight.copy_(torch.from_numpy(w))
        model.classifier.bias.copy_(torch.from_numpy(b))


CLI = os.path.join(os.path.dirname(__file__), "..", "..", "bin", "cxr-model")


class GatewayTest(unittest.TestCase):
    def require_jar(self):
        if not os.path.exists(JAR):
            if os.environ.get("CXR_REQUIRE_JAR") == "1":
                self.fail("gateway jar missing: " + JAR)
            self.skipTest("gateway jar missing: " + JAR)

    @staticmethod
    def cli(*args):
        """bin/cxr-model with these arguments, on the gateway jar under test."""
        return subprocess.run([CLI] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=dict(os.environ, CXR_GATEWAY_JAR=JAR), timeout=600)

    def test_score_matches_pytorch(self):
        self.require_jar()
        d = workdir(self)
        synth.generate(os.path.join(d, "data"), patients=6, size=96, seed=5, log=lambda *a: None)
        torch.manual_seed(0)
        model = cxr_models.densenet("tiny", 4, 3)
        with torch.no_grad():
            # distinct batch-norm statistics, as after training (identical ones are merged by the exporter)
            for name, b in model.state_dict().items():
                if "norm" in name and b.is_floating_point():
                    if name.endswith("running_mean") or name.endswith("bias"):
                        b.uniform_(-0.1, 0.1)
                    else:
                        b.uniform_(0.7, 1.3)
        import make_demo_models
        man = make_demo_models.manifest("tk-test", {"title": "t", "activation": "sigmoid", "crop": "center",
                                                    "labels": [(n, "X%d" % i, "99CXR", n) for i, n in enumerate(synth.FINDINGS)]},
                                        "tiny", 3, 64, 1, 1, "imagenet")
        # formatVersion 1 (crop + normalisation) and 2 (a stated spec with PIL's antialiased resize, as
        # --preset / --preprocessing write it): one spec drives training here and serving in Java
        v2 = dict(man, formatVersion=2, preprocessing={
            "upstream": "test: PIL Resize(64), CenterCrop(64), ImageNet", "steps": [
                {"op": "resize", "to": "short-side", "size": 64, "filter": "pil-bilinear"},
                {"op": "center-crop", "size": 64, "offset": "torchvision"},
                {"op": "channels", "count": 3}, {"op": "normalize", "kind": "imagenet"}]})
        # and the lecture's per-image standardisation, the trainer's default for a model trained from scratch
        standardised = dict(v2, preprocessing={"upstream": "test: per-image standardisation", "steps": [
                {"op": "resize", "to": "exact", "size": 64, "filter": "torch-bilinear"},
                {"op": "channels", "count": 3}, {"op": "normalize", "kind": "per-image"}]})
        for variant, man in (("formatVersion 1", man), ("formatVersion 2", v2), ("formatVersion 2 per-image", standardised)):
            packages = os.path.join(d, "packages-" + variant.replace(" ", "-"))
            pk = os.path.join(packages, "tk-test")
            a = argparse.Namespace(out=pk)
            files = sorted(os.path.join(root, f) for root, _, fs in os.walk(os.path.join(d, "data")) for f in fs if f.endswith(".dcm"))
            spread_head(model, torch.from_numpy(np.stack([preprocess.apply(preprocess.spec_of(man), decode.read(f)[1]) for f in files])))
            train.write_package(model, man, a, synth.FINDINGS, {n: 0.5 for n in synth.FINDINGS}, log=lambda *x: None)
            out = os.path.join(packages, "s.json")
            # in the test's folder: the gateway keeps its data (ONNX Runtime's libraries) under ./data by default, which
            # from the caller's folder would land in the source tree
            p = subprocess.run(["java", "-Dcxr.inference.packages-dir=" + packages, "-jar", os.path.abspath(JAR), "score",
                                "--json", out, "--no-reports"] + files, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=300)
            self.assertTrue(os.path.exists(out), p.stdout.decode()[-2000:])
            res = {os.path.realpath(i["file"]): {f["label"]: f["probability"] for f in i["runs"][0]["findings"]}
                   for i in json.loads(pathlib.Path(out).read_text())["images"]}
            self.assertEqual(len(res), len(files))
            spec = preprocess.spec_of(json.loads(pathlib.Path(pk, "manifest.json").read_text()))
            ref, _ = cxr_models.load_package_model(pk, "tiny")
            worst, probs = 0.0, []
            for f in files:
                _, g = decode.read(f)
                with torch.no_grad():
                    pt = torch.sigmoid(ref(torch.from_numpy(preprocess.apply(spec, g))[None])[0])[0].numpy()
                j = np.array([res[os.path.realpath(f)][n] for n in synth.FINDINGS])
                worst = max(worst, float(np.abs(pt - j).max()))
                probs += list(pt)
            self.assertGreater(max(probs) - min(probs), 0.3, "probabilities must spread for a sensitive comparison")
            self.assertLessEqual(worst, 2e-3, variant)
            print("gateway vs PyTorch, %s: %d images, max |diff| %.2e, probabilities %.3f..%.3f" % (variant, len(files), worst, min(probs), max(probs)))


    def test_bad_input_is_listed_and_a_label_without_positives_gets_no_auroc(self):
        self.require_jar()
        d = workdir(self)
        data = os.path.join(d, "data")
        synth.generate(data, patients=6, size=64, seed=9, log=lambda *a: None)
        rows = list(csv.reader(pathlib.Path(data, "LABELS.csv").read_text().splitlines()))
        header = rows[0]
        for r in rows[1:]:
            for i, h in enumerate(header):
                if h.startswith("Pneumothorax@"):
                    r[i] = "0"  # no positives anywhere
        blank = [""] * (len(header) - 2)
        rows.append(["missing.dcm", "SYN00001"] + blank)
        with open(os.path.join(data, "not-dicom.dcm"), "w") as f:
            f.write("hello")
        rows.append(["not-dicom.dcm", "SYN00002"] + blank)
        with open(os.path.join(data, "LABELS.csv"), "w", newline="") as f:
            csv.writer(f).writerows(rows)
        t = self.cli("train", "--data", data, "--labels", os.path.join(data, "LABELS.csv"), "--out", os.path.join(d, "pkg"),
                     "--arch", "tiny", "--size", "32", "--epochs", "1")
        self.assertEqual(t.returncode, 0, t.stdout.decode()[-2000:])
        v = self.cli("validate", "--package", os.path.join(d, "pkg"), "--data", data, "--labels", os.path.join(data, "LABELS.csv"),
                     "--out", os.path.join(d, "rep"))
        out = v.stdout.decode()
        self.assertEqual(v.returncode, 0, out[-2000:])
        self.assertIn("warning: Pneumothorax has no positives", out)
        rep = json.loads(pathlib.Path(d, "rep", "report.json").read_text())
        ptx = [l for l in rep["labels"] if l["name"] == "Pneumothorax"][0]
        self.assertIsNone(ptx["auroc"])
        self.assertIn("no positives", ptx["warning"])
        self.assertEqual(rep["skippedCount"], 2, rep["skipped"])
        reasons = {s["file"]: s["reason"] for s in rep["skipped"]}
        self.assertIn("no such file", reasons["missing.dcm"])
        self.assertTrue(reasons["not-dicom.dcm"], reasons)
        print("bad input: skipped %s; Pneumothorax without positives: auroc %s" % (sorted(reasons), ptx["auroc"]))

    def test_quantize_adds_the_int8_variant_that_validate_scores(self):
        self.require_jar()
        d = workdir(self)
        data = os.path.join(d, "data")
        synth.generate(data, patients=8, size=64, seed=3, log=lambda *a: None)
        labels = os.path.join(data, "LABELS.csv")
        pkg = os.path.join(d, "pkg")
        run = self.cli
        t = run("train", "--data", data, "--labels", labels, "--out", pkg, "--arch", "tiny", "--size", "32", "--epochs", "1")
        self.assertEqual(t.returncode, 0, t.stdout.decode()[-2000:])
        none = run("validate", "--package", pkg, "--data", data, "--labels", labels, "--out", os.path.join(d, "r0"), "--precision", "int8")
        self.assertNotEqual(none.returncode, 0)
        self.assertIn("has no INT8 variant", none.stdout.decode())
        q = run("quantize", "--package", pkg, "--data", data, "--labels", labels, "--int8-images", "8")
        self.assertEqual(q.returncode, 0, q.stdout.decode()[-2000:])
        self.assertIn("calibrating on 8 training images", q.stdout.decode())
        m = json.loads(pathlib.Path(pkg, "manifest.json").read_text())
        self.assertEqual(m["int8"]["file"], "model.int8.onnx", m.get("int8"))
        # quantize.py's defaults: the stem and block 1's first two 1x1 convs float, the other dense block in uint8
        self.assertEqual([c.split("/")[-2:] for c in m["int8"]["floatConvs"]], [["conv0", "Conv"]] + [["conv1", "Conv"]] * 2, m["int8"])
        self.assertEqual(m["int8"]["scheme"], "qdq-u8s8+uint8-dense-blocks", m["int8"])
        self.assertTrue(os.path.exists(os.path.join(pkg, "model.int8.onnx")))
        reports = {}
        # int8-alone: the INT8 variant without the gateway's decision guard (cxr.inference.int8-decision-margin 0)
        for precision, margin in (("fp32", []), ("int8", []), ("int8-alone", ["--int8-decision-margin", "0"])):
            v = run("validate", "--package", pkg, "--data", data, "--labels", labels, "--out", os.path.join(d, "r-" + precision),
                    "--precision", precision[:4], "--no-plots", "--bootstrap", "20", "--save-cams", *margin)
            self.assertEqual(v.returncode, 0, v.stdout.decode()[-2000:])
            reports[precision] = json.loads(pathlib.Path(d, "r-" + precision, "report.json").read_text())
            self.assertIn(precision[:4], reports[precision]["scoredBy"])
            # the per-image outputs two runs are compared with: probabilities and raw Grad-CAMs
            with open(os.path.join(d, "r-" + precision, "scores.csv")) as f:
                self.assertEqual(len(f.read().splitlines()), 1 + reports[precision]["images"])
            cams = np.load(os.path.join(d, "r-" + precision, "cams.npz"))
            self.assertEqual(cams["cams"].shape[:2], (reports[precision]["images"], len(reports[precision]["labels"])))
            # every finding's, negative ones too (score --cams-for-every-label), at the package's own thresholds
            self.assertFalse(np.isnan(cams["cams"]).any(), "every image's Grad-CAM for every label is in")
        self.assertEqual(reports["fp32"]["images"], reports["int8"]["images"])
        # the decision guard: its figures in the report (none without a margin, or at fp32), and at the package's
        # thresholds the guarded INT8 decisions are FP32's
        self.assertIsNone(reports["fp32"]["int8DecisionGuard"])
        self.assertIsNone(reports["int8-alone"]["int8DecisionGuard"])
        guard = reports["int8"]["int8DecisionGuard"]
        self.assertEqual(guard["margin"], 0.5, guard)
        self.assertTrue(0 <= guard["refereedImages"] <= reports["int8"]["images"], guard)
        thresholds = {l["name"]: l["threshold"] for l in m["labels"]}
        scores = {}
        for precision in reports:
            with open(os.path.join(d, "r-" + precision, "scores.csv")) as f:
                scores[precision] = {r["file"]: r for r in csv.DictReader(f)}
        flips = {p: sum((float(r[n]) >= t) != (float(scores["fp32"][file][n]) >= t)
                        for file, r in scores[p].items() for n, t in thresholds.items() if r.get(n))
                 for p in ("int8", "int8-alone")}
        self.assertEqual(flips["int8"], 0, flips)
        print("INT8 decision guard: %d of %d images scored again at fp32; decisions flipped against fp32 with / without it: %s" % (
            guard["refereedImages"], reports["int8"]["images"], flips))
        print("quantize: INT8 variant of a tiny package; AUROC fp32 / int8: %s" % {
            l["name"]: (l["auroc"], k["auroc"]) for l, k in zip(reports["fp32"]["labels"], reports["int8"]["labels"])})

        # --write-margin: the variant's margin measured on this set, written into a copy of the package, which the
        # gateway's decision guard then uses by itself
        wrong = run("validate", "--package", pkg, "--data", data, "--labels", labels, "--out", os.path.join(d, "r-bad"), "--write-margin")
        self.assertNotEqual(wrong.returncode, 0)
        self.assertIn("add --precision int8", wrong.stdout.decode())
        out, copy = os.path.join(d, "r-margin"), os.path.join(d, "pkg-margin")
        v = run("validate", "--package", pkg, "--data", data, "--labels", labels, "--out", out, "--precision", "int8",
                "--write-margin", "--package-out", copy, "--no-plots", "--bootstrap", "20")
        self.assertEqual(v.returncode, 0, v.stdout.decode()[-2000:])
        rep = json.loads(pathlib.Path(out, "report.json").read_text())
        measured = rep["int8Margin"]
        # the error is the one the fp32 and int8-alone runs above show, over the scores within the window of a threshold
        lo = lambda p: math.log(p) - math.log1p(-p) if 0 < p < 1 else math.copysign(math.inf, p - 0.5)
        errors = [abs(lo(float(r[n])) - lo(float(scores["fp32"][file][n]))) for file, r in scores["int8-alone"].items()
                  for n, t in thresholds.items() if r.get(n)
                  and min(abs(lo(float(r[n])) - lo(t)), abs(lo(float(scores["fp32"][file][n])) - lo(t))) < measured["window"]]
        self.assertEqual(measured["pairsNearThresholds"], len(errors), measured)
        self.assertAlmostEqual(measured["logOddsError"], max(errors), places=6)
        self.assertEqual(measured["flipsAlone"], flips["int8-alone"], measured)
        self.assertGreaterEqual(measured["margin"], measured["factor"] * measured["logOddsError"] - 1e-9, measured)
        # beyond every INT8 score whose decision flips: none of this set's flips escapes the guard
        self.assertGreater(measured["margin"], measured["largestFlippedDistance"] or 0, measured)
        self.assertEqual(measured["flipsGuarded"], 0, measured)
        self.assertEqual(rep["int8DecisionGuard"]["margin"], measured["margin"], rep["int8DecisionGuard"])
        written = json.loads(pathlib.Path(copy, "manifest.json").read_text())
        self.assertEqual(written["int8"]["decisionMargin"], measured["margin"])
        self.assertEqual(written["int8"]["decisionMarginBasis"]["logOddsError"], measured["logOddsError"])
        self.assertTrue(written["version"].endswith("+int8m"), written["version"])
        served = run("validate", "--package", copy, "--data", data, "--labels", labels, "--out", os.path.join(d, "r-served"),
                     "--precision", "int8", "--no-plots", "--bootstrap", "20")
        self.assertEqual(served.returncode, 0, served.stdout.decode()[-2000:])
        guard = json.loads(pathlib.Path(d, "r-served", "report.json").read_text())["int8DecisionGuard"]
        self.assertEqual(guard["margin"], measured["margin"], "the gateway takes the package's measured margin")
        print("INT8 decision margin measured on %d images: error %.3f near the thresholds (%d scores), margin %g; "
              "served at it: %d images scored again at fp32" % (measured["images"], measured["logOddsError"],
                                                                measured["pairsNearThresholds"], measured["margin"], guard["refereedImages"]))


if __name__ == "__main__":
    unittest.main()
