"""Fast CPU unit tests of the toolkit (stdlib unittest: python3 -m unittest discover -s toolkit/tests -t toolkit)."""
import os
import pathlib
import signal
import subprocess
import sys
import time
import unittest

import numpy as np
import torch

from cxr_model import codes, labels, losses, split, synth

from .workdir import workdir


class CoreTest(unittest.TestCase):
    def test_consensus_vote(self):
        self.assertEqual(labels.vote([1, 1, 0]), 1)
        self.assertEqual(labels.vote([0, 0, 1]), 0)
        self.assertIsNone(labels.vote([1, 0]))          # tie -> unknown
        self.assertIsNone(labels.vote([1, None, 0]))    # tie among those who graded
        self.assertEqual(labels.vote([None, None, 1]), 1)
        self.assertIsNone(labels.vote([None, None]))

    def test_class_weights_are_the_lectures_formula(self):
        y = torch.tensor([[1, 0], [0, 0], [0, float("nan")], [0, 1], [1, 0]], dtype=torch.float32)
        w_p, w_n, n_pos, n_neg = losses.bce_weights(y)
        # label 0: 2 positives of 5 known; label 1: 1 of 4 known (the NaN is not counted)
        self.assertAlmostEqual(float(w_p[0]), 3 / 5, places=6)
        self.assertAlmostEqual(float(w_n[0]), 2 / 5, places=6)
        self.assertAlmostEqual(float(w_p[1]), 3 / 4, places=6)
        self.assertAlmostEqual(float(w_n[1]), 1 / 4, places=6)

    def test_unknown_labels_are_masked(self):
        logits = torch.tensor([[0.3, -1.0], [2.0, 0.5]])
        y = torch.tensor([[1.0, float("nan")], [0.0, float("nan")]])
        w_p, w_n = torch.tensor([0.7, 0.5]), torch.tensor([0.3, 0.5])
        base = losses.weighted_bce(logits, y, w_p, w_n)
        changed = logits.clone()
        changed[:, 1] = torch.tensor([50.0, -50.0])  # any logit for the unknown label
        self.assertAlmostEqual(float(base), float(losses.weighted_bce(changed, y, w_p, w_n)), places=6)
        want = -(0.7 * torch.log(torch.sigmoid(torch.tensor(0.3))) + 0.3 * torch.log(1 - torch.sigmoid(torch.tensor(2.0)))) / 2
        self.assertAlmostEqual(float(base), float(want), places=5)

    def test_no_patient_in_two_splits_and_equal_minority_share(self):
        rng = np.random.default_rng(0)
        rows = []
        for p in range(300):
            for s in range(int(rng.integers(1, 4))):
                rows.append({"patient_id": "P%d" % p, "y": [int(rng.random() < 0.05), int(rng.random() < 0.3)]})
        a = split.patient_split(rows, 2, 0.15, 0.15, seed=1)
        self.assertEqual(set(a), {r["patient_id"] for r in rows})  # one set per patient, by construction of the map
        summ = split.summary(rows, ["rare", "common"], a)
        for n in ("rare", "common"):
            v, t = summ["validation"]["labels"][n]["share_of_positives"], summ["test"]["labels"][n]["share_of_positives"]
            self.assertLess(abs(v - t), 0.06, n)
            self.assertGreater(v, 0.08, n)

    def test_rare_label_beside_a_common_one_is_stratified(self):
        # every rare positive also carries the common label: a split that weighs a patient by all the labels
        # it carries pulls the rare one into train (seen: 87% of pneumothorax positives in train, 6% in test)
        rng = np.random.default_rng(3)
        rows = []
        for p in range(300):
            rare = rng.random() < 0.1
            for s in range(int(rng.integers(1, 4))):
                rows.append({"patient_id": "P%d" % p, "y": [int(rare and rng.random() < 0.8), int(rare or rng.random() < 0.3)]})
        a = split.patient_split(rows, 2, 0.15, 0.15, seed=0)
        summ = split.summary(rows, ["rare", "common"], a)
        for s, want in (("train", 0.70), ("validation", 0.15), ("test", 0.15)):
            for n in ("rare", "common"):
                self.assertAlmostEqual(summ[s]["labels"][n]["share_of_positives"], want, delta=0.04, msg="%s %s" % (s, n))

    def test_csv_errors_name_line_and_column(self):
        d = workdir(self)
        p = os.path.join(d, "L.csv")
        pathlib.Path(p).write_text("file,patient_id,Nodule\na.dcm,P1,1\nb.dcm,P2,maybe\n")
        with self.assertRaisesRegex(labels.LabelError, "line 3, column 'Nodule'"):
            labels.read(p, codes.catalogue())
        pathlib.Path(p).write_text("file,patient_id,Frobnitz\na.dcm,P1,1\n")
        with self.assertRaisesRegex(codes.CodeError, "Frobnitz"):
            labels.read(p, codes.catalogue())

    def test_synthetic_labels_parse_with_readers(self):
        d = workdir(self)
        synth.generate(d, patients=4, size=64, seed=2, log=lambda *a: None)
        lab = labels.read(os.path.join(d, "LABELS.csv"), codes.catalogue())
        self.assertEqual(lab.names, synth.FINDINGS)
        self.assertGreater(len(lab.rows), 3)


    def test_training_killed_and_resumed_equals_an_uninterrupted_run(self):
        d = workdir(self)
        data = os.path.join(d, "data")
        synth.generate(data, patients=8, size=48, seed=4, log=lambda *a: None)
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

        def train(out, wait_for_checkpoint=False):
            cmd = [sys.executable, "-m", "cxr_model.cli", "train", "--data", data, "--labels", os.path.join(data, "LABELS.csv"),
                   "--out", out, "--arch", "tiny", "--size", "32", "--epochs", "4", "--batch", "4", "--seed", "7", "--threads", "1"]
            p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if wait_for_checkpoint:
                ckpt = out + ".work/checkpoint.pt"
                deadline = time.time() + 120
                while not os.path.exists(ckpt) and p.poll() is None and time.time() < deadline:
                    time.sleep(0.05)
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                p.wait()
                p.stdout.close()
                p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out_text = p.communicate(timeout=300)[0].decode()
            self.assertEqual(p.returncode, 0, out_text[-2000:])
            return out_text, torch.load(out + ".work/best.pt")["model"]

        _, straight = train(os.path.join(d, "straight"))
        log, resumed = train(os.path.join(d, "killed"), wait_for_checkpoint=True)
        self.assertIn("resuming from", log)
        for k, v in straight.items():
            self.assertTrue(torch.equal(v, resumed[k]), k)

    def test_cosine_schedule_anneals_the_lr_over_the_epochs(self):
        d = workdir(self)
        data = os.path.join(d, "data")
        synth.generate(data, patients=6, size=48, seed=5, log=lambda *a: None)
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        out = os.path.join(d, "cos")
        cmd = [sys.executable, "-m", "cxr_model.cli", "train", "--data", data, "--labels", os.path.join(data, "LABELS.csv"),
               "--out", out, "--arch", "tiny", "--size", "32", "--epochs", "4", "--batch", "4", "--threads", "1",
               "--lr", "1e-3", "--lr-schedule", "cosine", "--patience", "4"]
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout.decode()[-2000:])
        import json
        lrs = [h["lr"] for h in json.loads(pathlib.Path(out, "training.json").read_text())["epochs"]]
        # epoch k (from 0) trains at 1e-5 + (1e-3 - 1e-5) (1 + cos(pi k / 4)) / 2, whatever the validation AUROC does
        want = [1e-5 + (1e-3 - 1e-5) * (1 + np.cos(np.pi * k / 4)) / 2 for k in range(4)]
        self.assertEqual(len(lrs), 4)
        np.testing.assert_allclose(lrs, want, rtol=1e-6)


if __name__ == "__main__":
    unittest.main()


class ArchitectureTest(unittest.TestCase):
    """--arch / --head: the package states the head the gateway runs for Grad-CAM (cxr_models.head_entry)."""

    def test_heads_parse_and_bad_ones_are_refused(self):
        import cxr_models
        self.assertEqual(cxr_models.parse_head("linear"), ())
        self.assertEqual(cxr_models.parse_head("mlp:32,32"), (32, 32))
        for bad in ("mlp:", "mlp:0,4", "mlp:a", "conv"):
            with self.assertRaises(ValueError):
                cxr_models.parse_head(bad)

    def test_every_arch_and_head_has_its_manifest_head(self):
        import cxr_models
        for arch, head, kind, pool in (("densenet169", (), None, None), ("resnet50", (32, 32), "mlp", "avg"),
                                       ("resnet50", (), None, None), ("vgg16_bn", (32, 32), "mlp", "flatten")):
            m = cxr_models.densenet(arch, 2, 3, head, 64)
            e = cxr_models.head_entry(m)
            self.assertEqual(e.get("kind"), kind, arch)
            self.assertEqual(e.get("pool"), pool, arch)
            logits, f = m(torch.zeros(1, 3, 64, 64))
            self.assertEqual(tuple(logits.shape), (1, 2))
            self.assertEqual(f.shape[2], 2, "64 px: a 2 x 2 feature map (stride 32)")
            if kind:
                self.assertEqual([l["activation"] for l in e["layers"]], ["relu", "relu", "none"])

    def test_train_resnet50_plus(self):
        """The COVID-19 paper's ResNet50+ (GAP + Dense(32) + Dense(32) + sigmoid) trains and writes an mlp package."""
        import json
        d = workdir(self)
        synth.generate(os.path.join(d, "data"), patients=8, size=80, seed=3, task="covid3", log=lambda *a: None)
        cli = os.path.join(os.path.dirname(__file__), "..", "..", "bin", "cxr-model")
        t = subprocess.run([cli, "train", "--data", os.path.join(d, "data"), "--labels", os.path.join(d, "data", "LABELS.csv"),
                            "--out", os.path.join(d, "pkg"), "--arch", "resnet50", "--head", "mlp:32,32", "--size", "64",
                            "--epochs", "1", "--only", "COVID-19", "--threads", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
        self.assertEqual(t.returncode, 0, t.stdout.decode()[-2000:])
        m = json.loads(pathlib.Path(d, "pkg", "manifest.json").read_text())
        self.assertEqual(m["architecture"], "resnet50")
        self.assertEqual(m["head"]["kind"], "mlp")
        self.assertEqual([l["weight"] for l in m["head"]["layers"]], ["fc.0.weight", "fc.2.weight", "fc.4.weight"])
        self.assertEqual(m["outputs"]["featureChannels"], 2048)
        self.assertEqual(m["guided"]["classes"], 1)
        bad = subprocess.run([cli, "train", "--data", os.path.join(d, "data"), "--labels", os.path.join(d, "data", "LABELS.csv"),
                              "--out", os.path.join(d, "bad"), "--arch", "vgg16_bn", "--head", "mlp:32,32", "--size", "72"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("multiple of 32", bad.stdout.decode())


class QuantizeGraphTest(unittest.TestCase):
    """quantize.chain_concats: DenseNet's concatenations of all earlier features become a chain, values unchanged."""

    def test_dense_concatenations_become_a_chain(self):
        import onnx
        import onnx.helper as oh
        import onnx.numpy_helper as nh
        import quantize
        rng = np.random.default_rng(3)
        nodes, inits, feats = [], [], ["x"]
        for i in range(1, 4):  # three dense layers: each reads the concatenation of all earlier features
            src = feats[0] if i == 1 else "cat%d" % (i - 1)
            inits.append(nh.from_array(rng.normal(size=(2, 2 * i, 3, 3)).astype(np.float32), "w%d" % i))
            nodes += [oh.make_node("Relu", [src], ["r%d" % i]),
                      oh.make_node("Conv", ["r%d" % i, "w%d" % i], ["y%d" % i], pads=[1, 1, 1, 1])]
            feats.append("y%d" % i)
            nodes.append(oh.make_node("Concat", list(feats), ["cat%d" % i], axis=1))
        nodes.append(oh.make_node("Concat", ["x", "y1", "y2"], ["other_axis"], axis=2))  # same inputs, other axis
        g = oh.make_graph(nodes, "dense", [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 5, 5])],
                          [oh.make_tensor_value_info("cat3", onnx.TensorProto.FLOAT, None),
                           oh.make_tensor_value_info("other_axis", onnx.TensorProto.FLOAT, None)], inits)
        model = oh.make_model(g)
        x = torch.from_numpy(rng.normal(size=(1, 2, 5, 5)).astype(np.float32))
        before = quantize.evaluate(model.graph, x, lambda *_: None)
        quantize.chain_concats(model)
        cats = {n.output[0]: list(n.input) for n in model.graph.node if n.op_type == "Concat"}
        self.assertEqual(cats["cat1"], ["x", "y1"])
        self.assertEqual(cats["cat2"], ["cat1", "y2"])
        self.assertEqual(cats["cat3"], ["cat2", "y3"])
        self.assertEqual(cats["other_axis"], ["x", "y1", "y2"], "a concatenation along another axis is not a prefix")
        after = quantize.evaluate(model.graph, x, lambda *_: None)
        for name in before:
            self.assertTrue(torch.equal(before[name], after[name]), name)

    def test_dense_blocks_run_in_uint8_unless_a_conv_stays_float(self):
        import onnx
        import onnx.helper as oh
        import onnx.numpy_helper as nh
        import quantize
        rng = np.random.default_rng(5)
        nodes, inits = [], []

        def bn(name, x, c):
            inits.extend(nh.from_array(v.astype(np.float32), "%s.%s" % (name, k)) for k, v in (
                ("w", rng.uniform(0.5, 1.5, c)), ("b", rng.normal(size=c)), ("m", rng.normal(size=c)), ("v", rng.uniform(0.5, 2, c))))
            nodes.append(oh.make_node("BatchNormalization", [x] + ["%s.%s" % (name, k) for k in "wbmv"], [name], name=name))
            nodes.append(oh.make_node("Relu", [name], [name + "_r"], name=name + "_relu"))
            return name + "_r"

        def conv(name, x, cin, cout, k):
            inits.append(nh.from_array(rng.normal(scale=0.5, size=(cout, cin, k, k)).astype(np.float32), name + ".w"))
            nodes.append(oh.make_node("Conv", [x, name + ".w"], [name], name=name, pads=[k // 2] * 4, kernel_shape=[k, k]))
            return name

        # two dense blocks of two layers (growth 2) on 2 input channels, a transition between them, a final norm
        x = "x"
        for blk in (1, 2):
            feats = [x]
            nodes.append(oh.make_node("Concat", [x], ["b%d_l1_cat" % blk], name="/denseblock%d/denselayer1/Concat" % blk, axis=1))
            prev = "b%d_l1_cat" % blk
            for layer in (1, 2):
                p = "/denseblock%d/denselayer%d/" % (blk, layer)
                h = bn(p + "norm1", prev, 2 * layer)
                h = bn(p + "norm2", conv(p + "conv1", h, 2 * layer, 4, 1), 4)
                feats.append(conv(p + "conv2", h, 4, 2, 3))
                prev = "b%d_cat%d" % (blk, layer)
                nodes.append(oh.make_node("Concat", list(feats), [prev], name=p + "Concat", axis=1))
            x = conv("/transition%d/conv" % blk, bn("/transition%d/norm" % blk, prev, 6), 6, 2, 1) if blk == 1 else bn("/norm5", prev, 6)
        g = oh.make_graph(nodes, "dense", [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 6, 6])],
                          [oh.make_tensor_value_info(x, onnx.TensorProto.FLOAT, [1, 6, 6, 6])], inits)
        calibration = torch.from_numpy(rng.normal(size=(4, 2, 6, 6)).astype(np.float32))
        # block 1's convs all float, or only its 1x1s (a wildcard path): either way block 1 stays as it is
        for keep_float, converted, n_float in (((), 2, 0), (["denseblock1"], 1, 4), (["denseblock1/*/conv1"], 1, 2)):
            model = quantize.chain_concats(quantize.fold_batch_norms(oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)])))
            floats = quantize.float_convs(model.graph, keep_float)
            self.assertEqual(len(floats), n_float, keep_float)
            tensors = {t for pair in quantize.quantised_tensors(model.graph, floats).values() for t in pair}
            blocks = quantize.dense_blocks(model.graph)
            self.assertEqual([b["final"] for b in blocks], ["b1_cat2", "b2_cat2"])
            ranges, moments = quantize.calibrate(model.graph, tensors | {b["final"] for b in blocks}, calibration)
            quantize.build_qdq(model, ranges, moments, floats)
            self.assertEqual(quantize.uint8_dense_blocks(model, blocks, ranges), converted, keep_float)
            ops = [n.op_type for n in model.graph.node]
            self.assertEqual(ops.count("QLinearConcat"), 2 * converted)
            # per converted block: two layers' BN-ReLU and what reads its last concatenation (transition or final norm),
            # except the final norm, which stays float (the feature map)
            self.assertEqual(ops.count("QLinearConv"), {2: 5, 1: 2}[converted])
            self.assertEqual(ops.count("BatchNormalization"), {2: 1, 1: 4}[converted])
            onnx.checker.check_model(model)

    def test_weight_bits_set_the_int8_range(self):
        """7-bit weights stay within |w| <= 64 (exact in ONNX Runtime's int16 pair sums on CPUs without VNNI); 8-bit ones
        use the whole symmetric int8 range and round the weights about half as coarsely."""
        import quantize
        w = np.random.default_rng(7).normal(size=(16, 8, 3, 3)).astype(np.float32)
        h = torch.eye(8 * 9) + 0.1  # a GPTQ input moment matrix: positive definite, columns correlated
        errors = {}
        for bits, qmax in ((7, 64), (8, 127)):
            for moments in (None, h):
                q, s = quantize.round_weights(w, moments, qmax=quantize.WEIGHT_QMAX[bits])
                self.assertEqual(int(np.abs(q).max()), qmax, (bits, moments is None))
                self.assertTrue(np.allclose(s, np.abs(w).reshape(16, -1).max(1) / qmax, rtol=1e-6))
            errors[bits] = float(np.abs(q * s.reshape(-1, 1, 1, 1) - w).max() / np.abs(w).max())
        self.assertLess(errors[8], 0.75 * errors[7], errors)
        with self.assertRaisesRegex(ValueError, "weight bits must be one of 7/8"):
            quantize.quantize_package("/nonexistent", np.zeros((1, 1, 8, 8), np.float32), weight_bits=6)
