"""Metrics for the validation report: AUROC with a DeLong 95% CI (DeLong et al. 1988, the fast
midrank form of Sun & Xu 2014) and a patient-level bootstrap CI (patients resampled, since images of
one patient are not independent), Wilson score intervals for proportions, the Youden threshold,
expected calibration error, the pointing game."""
import math

import numpy as np
from scipy.stats import norm

Z95 = float(norm.ppf(0.975))


def _midrank(x):
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    n = len(x)
    t = np.zeros(n)
    i = 0
    while i < n:
        j = i
        while j < n and xs[j] == xs[i]:
            j += 1
        t[i:j] = 0.5 * (i + j - 1) + 1
        i = j
    out = np.empty(n)
    out[order] = t
    return out


def auroc(y, p):
    """None unless both classes are present."""
    y = np.asarray(y)
    p = np.asarray(p, np.float64)
    m, n = int((y == 1).sum()), int((y == 0).sum())
    if m == 0 or n == 0:
        return None
    r = _midrank(p)
    return float((r[y == 1].sum() - m * (m + 1) / 2.0) / (m * n))


def delong_ci(y, p, level=0.95):
    """(auc, low, high) by DeLong's variance; None without both classes."""
    y = np.asarray(y)
    p = np.asarray(p, np.float64)
    pos, neg = p[y == 1], p[y == 0]
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        return None
    tx, ty, tz = _midrank(pos), _midrank(neg), _midrank(np.concatenate([pos, neg]))
    auc = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
    v01 = (tz[:m] - tx) / n
    v10 = 1.0 - (tz[m:] - ty) / m
    s01 = np.var(v01, ddof=1) if m > 1 else 0.0
    s10 = np.var(v10, ddof=1) if n > 1 else 0.0
    se = math.sqrt(max(s01 / m + s10 / n, 0.0))
    z = float(norm.ppf(0.5 + level / 2))
    return float(auc), float(max(0.0, auc - z * se)), float(min(1.0, auc + z * se))


def bootstrap_ci(y, p, groups, n_boot=1000, seed=0, level=0.95):
    """Percentile CI of the AUROC, resampling groups (patients) with replacement."""
    y = np.asarray(y)
    p = np.asarray(p, np.float64)
    groups = np.asarray(groups)
    uniq, inv = np.unique(groups, return_inverse=True)
    members = [np.nonzero(inv == g)[0] for g in range(len(uniq))]
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([members[g] for g in pick])
        a = auroc(y[idx], p[idx])
        if a is not None:
            vals.append(a)
    if len(vals) < n_boot // 2:
        return None
    lo, hi = np.percentile(vals, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def pointing_hit(peak, box, tolerance=0.0):
    """1 when the peak (x, y) lies in the box (x, y, w, h) grown by tolerance on every side, else 0.

    The pointing game of Zhang et al. (ECCV 2016) counts a hit within 15 pixels of the annotation. The
    gateway reports the peak as the centre of the brightest Grad-CAM feature cell (score --json camPeak),
    32 model-input pixels apart for DenseNet, so a small box can fall between centres: any point is at most
    16 px (per axis) from its nearest centre."""
    (px, py), (bx, by, bw, bh) = peak, box
    return int(bx - tolerance <= px <= bx + bw + tolerance and by - tolerance <= py <= by + bh + tolerance)


def wilson(k, n, z=Z95):
    """(estimate, low, high), or None for n = 0."""
    if n == 0:
        return None
    ph = k / n
    den = 1 + z * z / n
    c = (ph + z * z / (2 * n)) / den
    h = z * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / den
    return float(ph), float(max(0.0, c - h)), float(min(1.0, c + h))


def confusion(y, p, threshold):
    y = np.asarray(y)
    yes = np.asarray(p) >= threshold
    tp = int((yes & (y == 1)).sum())
    fp = int((yes & (y == 0)).sum())
    fn = int((~yes & (y == 1)).sum())
    tn = int((~yes & (y == 0)).sum())
    return tp, fp, fn, tn


def operating_point(y, p, threshold):
    tp, fp, fn, tn = confusion(y, p, threshold)
    def w(k, n):
        r = wilson(k, n)
        return None if r is None else {"value": r[0], "ci": [r[1], r[2]], "k": k, "n": n}
    return {"sensitivity": w(tp, tp + fn), "specificity": w(tn, tn + fp), "ppv": w(tp, tp + fp), "npv": w(tn, tn + fn)}


def youden_threshold(y, p):
    """The threshold maximising sensitivity + specificity - 1 (a probability actually observed)."""
    y = np.asarray(y)
    p = np.asarray(p, np.float64)
    if (y == 1).sum() == 0 or (y == 0).sum() == 0:
        return None
    best, best_j = 0.5, -1.0
    for t in np.unique(p):
        tp, fp, fn, tn = confusion(y, p, t)
        j = tp / (tp + fn) + tn / (tn + fp) - 1
        if j > best_j + 1e-12:
            best, best_j = float(t), j
    return best


def sensitivity_threshold(y, p, target):
    """The highest threshold whose sensitivity is at least target."""
    y = np.asarray(y)
    p = np.asarray(p, np.float64)
    pos = np.sort(p[y == 1])[::-1]
    if len(pos) == 0:
        return None
    k = int(math.ceil(target * len(pos)))
    return float(pos[max(0, min(len(pos), k) - 1)])


def ece(y, p, bins=10):
    """Expected calibration error with equal-width bins; also the bins for the reliability diagram."""
    y = np.asarray(y, np.float64)
    p = np.asarray(p, np.float64)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total, table = 0.0, []
    for b in range(bins):
        sel = idx == b
        if sel.sum() == 0:
            table.append({"low": edges[b], "high": edges[b + 1], "n": 0, "confidence": None, "observed": None})
            continue
        conf, obs = float(p[sel].mean()), float(y[sel].mean())
        total += sel.sum() / len(p) * abs(conf - obs)
        table.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": int(sel.sum()), "confidence": conf, "observed": obs})
    return float(total), table


def roc_curve(y, p):
    y = np.asarray(y)
    p = np.asarray(p, np.float64)
    ts = np.concatenate([[np.inf], np.unique(p)[::-1]])
    P, N = max(1, (y == 1).sum()), max(1, (y == 0).sum())
    fpr = [((p >= t) & (y == 0)).sum() / N for t in ts]
    tpr = [((p >= t) & (y == 1)).sum() / P for t in ts]
    return np.array(fpr), np.array(tpr)


def pr_curve(y, p):
    y = np.asarray(y)
    p = np.asarray(p, np.float64)
    ts = np.unique(p)[::-1]
    P = max(1, (y == 1).sum())
    prec, rec = [], []
    for t in ts:
        yes = p >= t
        tp = (yes & (y == 1)).sum()
        prec.append(tp / max(1, yes.sum()))
        rec.append(tp / P)
    return np.array(rec), np.array(prec)


def mean_auroc(y, p):
    """Mean over the labels that have both classes among the known entries (y NaN = unknown)."""
    vals = []
    for j in range(y.shape[1]):
        k = ~np.isnan(y[:, j])
        a = auroc(y[k, j].astype(int), p[k, j])
        if a is not None:
            vals.append(a)
    return (float(np.mean(vals)) if vals else None), vals
