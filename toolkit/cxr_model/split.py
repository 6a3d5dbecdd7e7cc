"""Patient-level split into train / validation / test (the lecture's rules): no patient in two sets,
and validation and test each hold the same share of every label's minority class, the rest train.

Greedy iterative stratification on patients: patients carrying the rarest positives are placed
first, each into the set that most lacks positives of the labels that patient carries (measured as
a share of that label's positives), so that rare labels are spread before common ones fill up."""
from collections import defaultdict

import numpy as np

SETS = ("train", "validation", "test")


def patient_split(rows, n_labels, val=0.15, test=0.15, seed=0):
    """rows: dicts with patient_id and y (1/0/None per label). Returns {patient_id: set name}."""
    if not 0 < val < 1 or not 0 < test < 1 or val + test >= 1:
        raise ValueError("validation and test shares must be in (0, 1) and sum below 1")
    share = {"train": 1.0 - val - test, "validation": val, "test": test}
    pos = defaultdict(lambda: np.zeros(n_labels))
    images = defaultdict(int)
    for r in rows:
        images[r["patient_id"]] += 1
        pos[r["patient_id"]] += np.array([1.0 if v == 1 else 0.0 for v in r["y"]])
    patients = sorted(images)
    rng = np.random.default_rng(seed)
    rng.shuffle(patients)
    total = sum(pos[p] for p in patients) if patients else np.zeros(n_labels)
    total_images = float(sum(images.values()))
    rarity = np.where(total > 0, total, np.inf)
    # patients with the rarest positive first; those with no positive last
    order = sorted(patients, key=lambda p: min([rarity[i] for i in range(n_labels) if pos[p][i] > 0] or [np.inf]))
    have = {s: np.zeros(n_labels) for s in SETS}
    have_images = {s: 0.0 for s in SETS}
    out = {}
    for p in order:
        carried = pos[p] > 0
        def need(s):
            img_need = share[s] - have_images[s] / total_images
            if carried.any():
                lab = (share[s] * total[carried] - have[s][carried]) / total[carried]
                return (float(lab.mean()), img_need)
            return (img_need, 0.0)
        best = max(SETS, key=need)
        out[p] = best
        have[best] += pos[p]
        have_images[best] += images[p]
    return out


def summary(rows, names, assignment):
    """Per set: patients, images, and per label positives / known and their share of all positives."""
    res = {}
    for s in SETS:
        sel = [r for r in rows if assignment[r["patient_id"]] == s]
        per = {}
        for i, n in enumerate(names):
            known = [r["y"][i] for r in sel if r["y"][i] is not None]
            per[n] = {"positives": int(sum(known)), "known": len(known)}
        res[s] = {"patients": len({r["patient_id"] for r in sel}), "images": len(sel), "labels": per}
    for n in names:
        tot = sum(res[s]["labels"][n]["positives"] for s in SETS) or 1
        for s in SETS:
            res[s]["labels"][n]["share_of_positives"] = round(res[s]["labels"][n]["positives"] / tot, 4)
    return res


def format_summary(summ, names):
    lines = ["%-11s %8s %7s  %s" % ("set", "patients", "images", "  ".join("%-22s" % n for n in names))]
    for s in SETS:
        d = summ[s]
        cells = ["%4d/%-5d (%4.1f%%)" % (d["labels"][n]["positives"], d["labels"][n]["known"],
                                          100.0 * d["labels"][n]["share_of_positives"]) for n in names]
        lines.append("%-11s %8d %7d  %s" % (s, d["patients"], d["images"], "  ".join("%-22s" % c for c in cells)))
    lines.append("(label cells: positives/known (share of that label's positives))")
    return "\n".join(lines)
