"""Patient-level split into train / validation / test (the lecture's rules): no patient in two sets,
and validation and test each hold the same share of every label's minority class, the rest train.

Iterative stratification (Sechidis, Tsoumakas and Vlahavas, ECML 2011) with patients as the unit: the
label with the fewest positives still unplaced is taken first, and each patient carrying it goes to
the set that still wants the most of that label (ties: the set that wants the most of the patient's
other labels, then the most images). Deciding on the rarest label alone, not an average over every
label a patient carries, keeps a rare finding from being pulled into train by a common one beside it.
Patients without any positive then fill the sets to their image shares."""
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
    total = sum((pos[p] for p in patients), np.zeros(n_labels))
    # what each set still wants: positives per label and images, in counts
    want = {s: share[s] * total for s in SETS}
    want_images = {s: share[s] * float(sum(images.values())) for s in SETS}
    tiebreak = {s: i for i, s in enumerate(SETS)}  # train, then validation, then test
    out = {}

    def place(p, s):
        out[p] = s
        want[s] = want[s] - pos[p]
        want_images[s] -= images[p]

    left = [p for p in patients if pos[p].any()]
    while left:
        remaining = sum((pos[p] for p in left), np.zeros(n_labels))
        label = min((i for i in range(n_labels) if remaining[i] > 0), key=lambda i: remaining[i])
        for p in [q for q in left if pos[q][label] > 0]:
            others = pos[p] > 0
            s = max(SETS, key=lambda s: (want[s][label], float(want[s][others].sum()), want_images[s], -tiebreak[s]))
            place(p, s)
        left = [p for p in left if p not in out]
    for p in patients:
        if p not in out:
            place(p, max(SETS, key=lambda s: (want_images[s], -tiebreak[s])))
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
