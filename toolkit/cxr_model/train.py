"""cxr-model train: a model package from a labelled folder of DICOM files, by the lecture's method
(standardised input, patient-level stratified split, weighted BCE / weighted softmax, augmentation,
DenseNet, transfer learning), selected on mean validation AUROC."""
import json
import math
import os
import pathlib
import platform
import random
import sys
import time

import numpy as np
import torch
import torchvision
import torchvision.transforms.functional as TF

import cxr_models
import cxr_preprocessing
import guided_backprop
import make_demo_models
import quantize

from . import NOT_FOR_DIAGNOSTIC_USE, codes, dataset, labels as labels_mod, losses, metrics, preprocess, split

RESEARCH_USE = ("Research use only: trained by cxr-model train on a local data set; NOT FOR DIAGNOSTIC USE. "
                "Check it with cxr-model validate on data it has not seen before any use.")


def add_arguments(ap):
    ap.add_argument("--data", required=True, help="folder the LABELS.csv file paths are relative to")
    ap.add_argument("--labels", required=True, help="LABELS.csv")
    ap.add_argument("--out", required=True, help="package folder to write")
    ap.add_argument("--size", type=int, default=224, help="model input side (default 224)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--init", help="package folder (ONNX weights read back) or checkpoint (.pt) to fine-tune from")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the forward pass (GPU; the loss stays float32)")
    ap.add_argument("--channels-last", action="store_true", help="channels_last memory format (faster convolutions on GPU)")
    ap.add_argument("--arch", default="densenet121", choices=list(cxr_models.ARCHS + cxr_models.EXTRA_ARCHS + cxr_models.TEST_ARCHS),
                    help="the backbone (tiny: tests); the lecture's DenseNet family, ResNet-50, VGG16-BN")
    ap.add_argument("--head", default="linear", help="linear (over pooled features; VGG: over the flattened map) or "
                    "mlp:W1,W2,... hidden ReLU layers (the COVID-19 paper's ResNet50+: mlp:32,32)")
    ap.add_argument("--activation", choices=["sigmoid", "softmax"], default="sigmoid",
                    help="sigmoid: multi-label, weighted BCE; softmax: one class per image (e.g. Normal / Pneumonia / COVID-19)")
    ap.add_argument("--only", help="comma-separated label names to train (default: every finding column)")
    ap.add_argument("--codes", help="CSV name,value,scheme,meaning adding label codes to the catalogue")
    ap.add_argument("--crop", choices=["resize", "center"], default=None, help="default: the --init package's, else resize")
    ap.add_argument("--normalisation", choices=["per-image", "imagenet", "xrv"], default=None,
                    help="default: the --init package's, else per-image (the lecture's standardisation: each image to "
                         "mean 0, std 1); imagenet: ImageNet channel statistics, for weights trained with them")
    ap.add_argument("--preset", help="train with an importer preset's preprocessing (chexnet, jrzech, xrv); "
                                     "written as manifest formatVersion 2, served by the gateway step for step")
    ap.add_argument("--preprocessing", metavar="FILE.json", help="train with this preprocessing spec (cxr_preprocessing.py)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=None, help="default 1e-3, 1e-4 with --init")
    ap.add_argument("--weight-decay", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split-from", metavar="TRAINING.json", help="reuse the patient split of an earlier run (its training.json)")
    ap.add_argument("--val", type=float, default=0.15, help="validation share of patients' positives (default 0.15)")
    ap.add_argument("--test", type=float, default=0.15, help="test share (default 0.15)")
    ap.add_argument("--patience", type=int, default=6, help="early stopping: epochs without a better mean validation AUROC")
    ap.add_argument("--lr-patience", type=int, default=2, help="LR-on-plateau: epochs before the LR is divided by 10")
    ap.add_argument("--lr-schedule", choices=["plateau", "cosine"], default="plateau",
                    help="plateau: divide the LR by 10 after --lr-patience epochs without a better validation AUROC "
                         "(default); cosine: anneal it from --lr to 1/100 of it over the epochs after the frozen ones")
    ap.add_argument("--freeze-backbone-epochs", type=int, default=0, help="train only the new head for the first K epochs")
    ap.add_argument("--oversample", action="store_true", help="draw images with a positive of a rare label more often")
    aug = ap.add_argument_group("augmentation (the lecture's list)")
    aug.add_argument("--hflip", action=argparse_bool(), default=True, help="horizontal flips (default on)")
    aug.add_argument("--rotate", type=float, default=10.0, help="max rotation in degrees (default 10, at most 20)")
    aug.add_argument("--shear", type=float, default=10.0, help="max shear in degrees on x and y (default 10, at most 20)")
    aug.add_argument("--brightness", type=float, default=0.1, help="max brightness change, fraction of full scale (default 0.1)")
    aug.add_argument("--contrast", type=float, default=0.15, help="max contrast change, fraction (default 0.15)")
    aug.add_argument("--erase", type=float, default=0.25, help="probability of erasing a small patch (default 0.25)")
    aug.add_argument("--vflip", action=argparse_bool(), default=False, help="vertical flips (default off: no film has the apices below)")
    aug.add_argument("--rot90", action=argparse_bool(), default=False, help="90-degree rotations (default off)")
    aug.add_argument("--no-augment", action="store_true", help="switch all augmentation off")
    out = ap.add_argument_group("package")
    out.add_argument("--id", default=None, help="package id (default: the --out folder name)")
    out.add_argument("--version", default="0.1.0")
    out.add_argument("--title", default=None)
    out.add_argument("--intended-use", default=RESEARCH_USE)
    out.add_argument("--diagnostic", action="store_true", help="mark the package diagnostic (only for a cleared model)")
    out.add_argument("--reported", help="comma-separated labels that become findings (default all)")
    quantize.add_arguments(out, images=False)
    ap.add_argument("--work", help="checkpoint folder (default OUT.work); a run with the same settings resumes from it")
    ap.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--max-epoch-seconds", type=float, default=0, help=argparse_suppress())


def argparse_bool():
    import argparse
    return argparse.BooleanOptionalAction


def argparse_suppress():
    import argparse
    return argparse.SUPPRESS


def stated_preprocessing(a, init_manifest):
    """A formatVersion 2 spec from --preset, --preprocessing or a version-2 --init package; None for version 1."""
    if sum(x is not None for x in (a.preset, a.preprocessing)) + (a.crop is not None or a.normalisation is not None) > 1:
        raise SystemExit("--preset, --preprocessing and --crop/--normalisation exclude each other")
    if a.preset:
        if a.preset not in cxr_preprocessing.PRESETS:
            raise SystemExit("--preset must be one of " + ", ".join(sorted(cxr_preprocessing.PRESETS)))
        spec = cxr_preprocessing.PRESETS[a.preset]
    elif a.preprocessing:
        spec = json.loads(pathlib.Path(a.preprocessing).read_text())
    elif init_manifest is not None and init_manifest.get("formatVersion", 1) >= 2 and a.crop is None and a.normalisation is None:
        spec = init_manifest["preprocessing"]
    else:
        init_pre = init_manifest["preprocessing"] if init_manifest else {}
        if (a.normalisation or init_pre.get("normalisation", "per-image")) != "per-image":
            return None
        # per-image standardisation has no formatVersion 1 spelling: the version-1 steps, standardised
        crop = a.crop or init_pre.get("crop", "resize")
        spec = cxr_preprocessing.spec_of({"preprocessing": {"crop": crop, "normalisation": "per-image"},
                                          "input": {"size": a.size, "channels": 3}})
        spec["upstream"] = ("cxr-model train: the lecture's standardisation (crop %s, bilinear to %d x %d, "
                            "each image to mean 0, std 1)" % (crop, a.size, a.size))
    try:
        cxr_preprocessing.validate(spec)
        cxr_preprocessing.model_input(spec)
    except ValueError as e:
        raise SystemExit("preprocessing: %s" % e)
    return spec


class Augment:
    """On the preprocessed tensor [C, S, S]; brightness and contrast in units of the input scale."""

    def __init__(self, a, spec):
        self.on = not a.no_augment
        self.hflip, self.vflip, self.rot90 = a.hflip, a.vflip, a.rot90
        if a.rotate > 20 or a.shear > 20:
            raise SystemExit("--rotate and --shear are at most 20 degrees (the lecture's range)")
        self.rotate, self.shear = a.rotate, a.shear
        self.brightness, self.contrast, self.erase = a.brightness, a.contrast, a.erase
        black = preprocess.apply(spec, np.zeros((4, 4), np.uint8))[:, 0, 0]
        white = preprocess.apply(spec, np.full((4, 4), 255, np.uint8))[:, 0, 0]
        self.black = [float(v) for v in black]
        # per-image standardisation maps every flat image to 0: there the unit of brightness is one SD
        unit = np.where(white - black == 0, 1.0, white - black)
        self.unit = torch.tensor(unit, dtype=torch.float32)[:, None, None]
        self.eraser = torchvision.transforms.RandomErasing(p=1.0, scale=(0.01, 0.05), value=0)

    def __call__(self, x):
        if not self.on:
            return x
        r = torch.rand(8)
        if self.hflip and r[0] < 0.5:
            x = TF.hflip(x)
        if self.vflip and r[1] < 0.5:
            x = TF.vflip(x)
        if self.rot90:
            x = torch.rot90(x, int(r[2] * 4) % 4, dims=(1, 2))
        if self.rotate > 0 or self.shear > 0:
            ang = float((r[3] * 2 - 1) * self.rotate)
            sh = [float((r[4] * 2 - 1) * self.shear), float((r[5] * 2 - 1) * self.shear)]
            x = TF.affine(x, angle=ang, translate=[0, 0], scale=1.0, shear=sh,
                          interpolation=TF.InterpolationMode.BILINEAR, fill=self.black)
        if self.contrast > 0 or self.brightness > 0:
            c = 1 + float((torch.rand(1) * 2 - 1) * self.contrast)
            b = float((torch.rand(1) * 2 - 1) * self.brightness)
            mu = x.mean(dim=(1, 2), keepdim=True)
            x = (x - mu) * c + mu + b * self.unit
        if self.erase > 0 and r[6] < self.erase:
            x = self.eraser(x)
        return x


def targets(y, activation):
    """sigmoid: float [N, L] with NaN unknown; softmax: long [N], -1 where not exactly one known class."""
    if activation == "sigmoid":
        return torch.from_numpy(y)
    t = np.full(len(y), -1, np.int64)
    for i, row in enumerate(y):
        if not np.isnan(row).any() and row.sum() == 1:
            t[i] = int(np.argmax(row))
    return torch.from_numpy(t)


def probabilities(model, x, activation, device, batch=32):
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits, _ = model(x[i:i + batch].to(device))
            out.append((torch.sigmoid(logits) if activation == "sigmoid" else torch.softmax(logits, 1)).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def load_init(path, arch, n_labels, channels, names, head=(), size=224):
    """(model, init manifest or None, note). Head kept when the label names and the head's shapes match, new otherwise."""
    if os.path.isdir(path):
        src, manifest = cxr_models.load_package_model(path)
        src_names = [l["name"] for l in manifest["labels"]]
        if manifest["input"]["channels"] != channels:
            raise SystemExit("--init %s has %d input channels, this run %d" % (path, manifest["input"]["channels"], channels))
        sd = src.state_dict()
    else:
        obj = torch.load(path, map_location="cpu")
        sd = obj.get("model", obj) if isinstance(obj, dict) else obj.state_dict()
        manifest = obj.get("manifest") if isinstance(obj, dict) else None
        src_names = obj.get("names") if isinstance(obj, dict) else None
    model = cxr_models.densenet(arch, n_labels, channels, head, size)
    own = model.state_dict()
    prefix = model.head_name + "."
    head_keys = [k for k in own if k.startswith(prefix)]
    keep_head = src_names == names and all(k in sd and sd[k].shape == own[k].shape for k in head_keys) and not any(
        k.startswith(prefix) and k not in own for k in sd)
    load = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape and (keep_head or not k.startswith(prefix))}
    missing = [k for k in own if k not in load and not k.startswith(prefix)]
    if missing:
        raise SystemExit("--init %s: %d backbone tensors missing or of another shape (e.g. %s): another architecture than %s?"
                         % (path, len(missing), missing[0], arch))
    own.update(load)
    model.load_state_dict(own)
    return model, manifest, ("head kept" if keep_head else "new head for %d labels" % n_labels)


def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def versions():
    import onnx
    import pydicom
    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "pydicom": pydicom.__version__, "onnx": onnx.__version__}


def atomic_save(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def run(a, log=print):
    t_start = time.time()
    torch.set_num_threads(max(1, a.threads))
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available to PyTorch")
    cat = codes.catalogue(a.codes)
    only = [s.strip() for s in a.only.split(",")] if a.only else None
    lab = labels_mod.read(a.labels, cat, only)
    names = lab.names
    log("labels: %s (%d rows)" % (", ".join(names), len(lab.rows)))
    items, skipped = dataset.load(a.data, lab, log=log)
    channels = 3
    init_manifest = None
    if a.init and os.path.isdir(a.init):
        init_manifest = json.loads(pathlib.Path(a.init, "manifest.json").read_text())
    init_pre = init_manifest["preprocessing"] if init_manifest else {}
    crop = a.crop or init_pre.get("crop", "resize")
    norm = a.normalisation or init_pre.get("normalisation", "imagenet")
    if norm == "xrv":
        channels = 1
    pid = a.id or os.path.basename(os.path.normpath(a.out)).lower()
    stated = stated_preprocessing(a, init_manifest)
    if stated is not None:
        # one spec for training and serving: the package states the steps this model was trained with
        channels, a.size = cxr_preprocessing.model_input(stated)
        crop, norm = "spec", stated["upstream"]
    manifest = make_demo_models.manifest(
        pid, {"title": a.title or "cxr-model: " + ", ".join(names), "activation": a.activation,
              "labels": [(n,) + tuple(lab.codes[n]) for n in names], "crop": "resize" if stated else crop,
              "reported": [s.strip() for s in a.reported.split(",")] if a.reported else None},
        a.arch, channels, a.size, 1, 1, "imagenet" if stated else norm, version=a.version, intended_use=a.intended_use,
        diagnostic=a.diagnostic)
    if stated is not None:
        manifest["formatVersion"] = 2
        manifest["preprocessing"] = stated
    spec = preprocess.spec_of(manifest)
    preprocess.validate(spec)

    # split by patient, minority shares equal in validation and test
    rows = [{"patient_id": it.patient_id, "y": it.y} for it in items]
    assign = split.patient_split(rows, len(names), a.val, a.test, a.seed)
    if getattr(a, "split_from", None):
        # another run's patient split (its training.json): models compared on one task see the same patients
        prev = json.loads(pathlib.Path(a.split_from).read_text())["split"]["patients"]
        given = {p: s for s, ps in prev.items() for p in ps}
        absent = sorted(set(assign) - set(given))
        if absent:
            raise SystemExit("--split-from %s: %d patient(s) of this data set are not in its split (e.g. %s)" % (a.split_from, len(absent), absent[0]))
        assign = {p: given[p] for p in assign}
    summ = split.summary(rows, names, assign)
    log("split by patient (seed %d):\n%s" % (a.seed, split.format_summary(summ, names)))
    for s in ("validation", "test"):
        for n in names:
            d = summ[s]["labels"][n]
            if d["positives"] == 0 or d["positives"] == d["known"]:
                log("warning: %s has no %s in the %s set: no AUROC for it there" % (n, "positives" if d["positives"] == 0 else "negatives", s))
    idx = {s: [i for i, it in enumerate(items) if assign[it.patient_id] == s] for s in split.SETS}
    if not idx["train"]:
        raise SystemExit("no training images after the split")

    log("preprocessing %d images (%s, %s, %d x %d, %d channel%s)" % (len(items), crop, norm, a.size, a.size, channels, "s" if channels > 1 else ""))
    x_all = torch.from_numpy(np.stack([preprocess.apply(spec, it.gray) for it in items]))
    y_all = dataset.label_matrix(items)
    X = {s: x_all[idx[s]] for s in split.SETS}
    Y = {s: y_all[idx[s]] for s in split.SETS}
    T = {s: targets(Y[s], a.activation) for s in split.SETS}

    if a.activation == "sigmoid":
        w_p, w_n, n_pos, n_neg = losses.bce_weights(T["train"])
        weights_record = {n: {"w_p": float(w_p[i]), "w_n": float(w_n[i]), "n_pos": int(n_pos[i]), "n_neg": int(n_neg[i])}
                          for i, n in enumerate(names)}
        for n in names:
            if weights_record[n]["n_pos"] == 0:
                log("warning: %s has no positives in the training set" % n)
        loss_fn = lambda logits, t: losses.weighted_bce(logits, t, w_p.to(device), w_n.to(device))  # noqa: E731
    else:
        cw, counts = losses.class_weights(T["train"], len(names))
        weights_record = {n: {"weight": float(cw[i]), "n": int(counts[i])} for i, n in enumerate(names)}
        loss_fn = lambda logits, t: losses.weighted_ce(logits, t, cw.to(device))  # noqa: E731
    log("class weights (training set): " + json.dumps(weights_record))

    try:
        head = cxr_models.parse_head(getattr(a, "head", "linear"))
        cxr_models.densenet(a.arch, 1, channels, head, a.size) if cxr_models.family(a.arch) == "vgg" else None
    except ValueError as e:
        raise SystemExit(str(e))
    set_seed(a.seed)
    if a.init:
        model, _, note = load_init(a.init, a.arch, len(names), channels, names, head, a.size)
        log("init from %s (%s)" % (a.init, note))
    else:
        model = cxr_models.densenet(a.arch, len(names), channels, head, a.size)
    model = model.to(device)
    memory_format = torch.channels_last if a.channels_last else torch.contiguous_format
    if a.channels_last:
        model = model.to(memory_format=memory_format)
    lr = a.lr if a.lr is not None else (1e-4 if a.init else 1e-3)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=a.weight_decay)
    if getattr(a, "lr_schedule", "plateau") == "cosine":
        # one half cosine over the epochs that train the backbone, stepped once per such epoch; the last
        # epochs at a small LR are where a from-scratch model settles (the plateau rule waits for a stall)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, a.epochs - a.freeze_backbone_epochs), eta_min=lr / 100)
    else:
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.1, patience=a.lr_patience)
    augment = Augment(a, spec)

    sample_w = None
    if a.oversample:
        t = T["train"].numpy() if a.activation == "sigmoid" else np.eye(len(names))[np.maximum(T["train"].numpy(), 0)]
        pos = np.nan_to_num(t) > 0
        share = pos.mean(0)
        boost = np.where(share > 0, 0.5 / np.maximum(share, 1e-9), 1.0)
        sample_w = np.maximum(1.0, (pos * boost).max(1))

    fp = dataset.fingerprint(items, names)
    config = {k: v for k, v in vars(a).items() if k not in ("out", "work", "fresh", "threads", "device", "epochs", "max_epoch_seconds",
                                                    # the INT8 variant is made after training: not a training setting
                                                    "int8", "int8_images", "int8_method", "int8_percentile", "int8_float",
                                                    "int8_blocks", "int8_weight_bits")}
    work = a.work or os.path.normpath(a.out) + ".work"
    os.makedirs(work, exist_ok=True)
    ckpt_path = os.path.join(work, "checkpoint.pt")
    history, best, best_state, start_epoch, stale = [], -math.inf, None, 0, 0
    if os.path.exists(ckpt_path) and not a.fresh:
        ck = torch.load(ckpt_path, map_location="cpu")
        if ck.get("fingerprint") == fp and ck.get("config") == config:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            torch.set_rng_state(ck["rng_torch"])
            np.random.set_state(ck["rng_numpy"])
            random.setstate(ck["rng_python"])
            history, best, best_state, start_epoch, stale = ck["history"], ck["best"], ck["best_state"], ck["epoch"], ck["stale"]
            log("resuming from %s after epoch %d" % (ckpt_path, start_epoch))
        else:
            log("checkpoint %s is for other data or settings: starting afresh" % ckpt_path)

    n_train = len(idx["train"])
    train_seconds = sum(h["seconds"] for h in history)
    train_images = sum(h["images"] for h in history)
    for epoch in range(start_epoch, a.epochs):
        if stale >= a.patience:
            break
        frozen = epoch < a.freeze_backbone_epochs
        for mod in model.backbone():
            for p in mod.parameters():
                p.requires_grad_(not frozen)
        model.train()
        if frozen:
            for mod in model.backbone():
                mod.eval()  # frozen means frozen: batch-norm statistics stay too
        if sample_w is not None:
            order = torch.multinomial(torch.from_numpy(sample_w), n_train, replacement=True)
        else:
            order = torch.randperm(n_train)
        t0 = time.time()
        total_loss, seen = 0.0, 0
        for b in range(0, n_train, a.batch):
            sel = order[b:b + a.batch]
            xb = torch.stack([augment(X["train"][i]) for i in sel]).to(device, memory_format=memory_format)
            tb = T["train"][sel].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.bf16):
                logits, _ = model(xb)
            loss = loss_fn(logits.float(), tb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total_loss += float(loss) * len(sel)
            seen += len(sel)
            dataset.progress(seen, n_train, t0, time.time(), "epoch %d/%d loss %.4f" % (epoch + 1, a.epochs, total_loss / seen))
            if a.max_epoch_seconds and time.time() - t0 > a.max_epoch_seconds:
                break
        secs = time.time() - t0
        train_seconds += secs
        train_images += seen
        pv = probabilities(model, X["validation"], a.activation, device)
        mean_auc, _ = metrics.mean_auroc(Y["validation"], pv) if len(pv) else (None, [])
        per = {}
        for j, n in enumerate(names):
            k = ~np.isnan(Y["validation"][:, j]) if len(pv) else []
            per[n] = metrics.auroc(Y["validation"][k, j].astype(int), pv[k, j]) if len(pv) else None
        score = mean_auc if mean_auc is not None else -total_loss / max(1, seen)
        h = {"epoch": epoch + 1, "loss": total_loss / max(1, seen), "val_mean_auroc": mean_auc, "val_auroc": per,
             "lr": opt.param_groups[0]["lr"], "frozen_backbone": frozen, "seconds": secs, "images": seen,
             "images_per_s": seen / secs if secs > 0 else None}
        history.append(h)
        improved = score > best + 1e-6
        if improved:
            best, stale = score, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        if not frozen:
            sched.step(score) if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau) else sched.step()
        log("epoch %d: loss %.4f, validation mean AUROC %s, %s, lr %.1e, %.1f images/s%s" % (
            epoch + 1, h["loss"], "n/a" if mean_auc is None else "%.4f" % mean_auc,
            ", ".join("%s %s" % (n, "n/a" if v is None else "%.3f" % v) for n, v in per.items()),
            h["lr"], h["images_per_s"] or 0, "  (best)" if improved else ""))
        atomic_save({"fingerprint": fp, "config": config, "model": model.state_dict(), "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict(), "rng_torch": torch.get_rng_state(), "rng_numpy": np.random.get_state(),
                     "rng_python": random.getstate(), "history": history, "best": best, "best_state": best_state,
                     "epoch": epoch + 1, "stale": stale, "names": names}, ckpt_path)
    if stale >= a.patience:
        log("early stop: no better validation AUROC for %d epochs" % a.patience)
    if best_state is not None:
        model.load_state_dict(best_state)
    model = model.to("cpu", memory_format=torch.contiguous_format).float().eval()
    atomic_save({"model": model.state_dict(), "names": names, "manifest": manifest}, os.path.join(work, "best.pt"))

    # thresholds from validation: Youden's J per label (0.5 where the validation set cannot tell)
    pv = probabilities(model, X["validation"], a.activation, "cpu")
    thresholds = {}
    for j, n in enumerate(names):
        k = ~np.isnan(Y["validation"][:, j]) if len(pv) else None
        t = metrics.youden_threshold(Y["validation"][k, j].astype(int), pv[k, j]) if len(pv) else None
        thresholds[n] = 0.5 if t is None else float(min(1.0, max(0.0, t)))
    write_package(model, manifest, a, names, thresholds, log, calibration=X["train"])
    pt = probabilities(model, X["test"], a.activation, "cpu")
    test_auc = {}
    for j, n in enumerate(names):
        k = ~np.isnan(Y["test"][:, j]) if len(pt) else None
        test_auc[n] = metrics.auroc(Y["test"][k, j].astype(int), pt[k, j]) if len(pt) else None
    record = {
        "tool": "cxr-model train", "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "notice": NOT_FOR_DIAGNOSTIC_USE if not a.diagnostic else "",
        "dataset": {"fingerprint": fp, "labels_file": os.path.abspath(a.labels), "data": os.path.abspath(a.data),
                    "images": len(items), "skipped": [{"line": l, "file": f, "reason": r} for (l, f, r) in skipped]},
        "labels": names, "activation": a.activation,
        "split": {"seed": a.seed, "validation_share": a.val, "test_share": a.test, "summary": summ,
                  "patients": {s: sorted(p for p, v in assign.items() if v == s) for s in split.SETS}},
        "class_weights": weights_record, "epochs": history, "best_validation_score": best,
        "thresholds": {"method": "youden on the validation set", "values": thresholds},
        "test_auroc_pytorch": test_auc,
        "train_images_per_s": train_images / train_seconds if train_seconds > 0 else None,
        "settings": {k: v for k, v in vars(a).items()}, "preprocessing": spec, "versions": versions(),
        "wall_seconds": time.time() - t_start,
    }
    with open(os.path.join(a.out, "training.json"), "w") as f:
        json.dump(record, f, indent=1, default=str)
        f.write("\n")
    log("test AUROC (PyTorch, for orientation; cxr-model validate scores with the gateway): " +
        ", ".join("%s %s" % (n, "n/a" if v is None else "%.3f" % v) for n, v in test_auc.items()))
    log("training images/s: %.2f" % (record["train_images_per_s"] or 0))
    log("wrote package %s (%s)" % (a.out, NOT_FOR_DIAGNOSTIC_USE if not a.diagnostic else "diagnostic"))
    return record


def write_package(model, manifest, a, names, thresholds, log, calibration=None):
    """The package folder; with --int8 also its INT8 variant, calibrated on calibration (model inputs)."""
    os.makedirs(a.out, exist_ok=True)
    for stale in ("weights.bin", "weights.recipe.json", quantize.INT8_FILE):
        if os.path.exists(os.path.join(a.out, stale)):
            os.remove(os.path.join(a.out, stale))
    ch, size = manifest["input"]["channels"], manifest["input"]["size"]
    cxr_models.export_onnx(model, os.path.join(a.out, "model.onnx"), ch, size)
    # the guided-backpropagation adjoint of the trained weights: guided Grad-CAM in the worker
    guided_backprop.export(model.eval(), os.path.join(a.out, "guided.onnx"), ch, size, manifest["input"]["name"])
    manifest["guided"] = guided_backprop.manifest_entry(model, input_name=manifest["input"]["name"])
    manifest["head"] = cxr_models.head_entry(model)
    with torch.no_grad():
        feats = model(torch.zeros(1, ch, size, size))[1]
    manifest["outputs"]["featureChannels"] = int(feats.shape[1])
    manifest["outputs"]["featureSize"] = int(feats.shape[2])
    for l in manifest["labels"]:
        l["threshold"] = thresholds[l["name"]]
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    if getattr(a, "int8", False):
        quantize.quantize_with_args(a.out, a, calibration, log)
