"""The lecture's losses. Multi-label: weighted binary cross-entropy per label with
w_p = N_neg / N and w_n = N_pos / N (counted on the training set over the images where the label is
known), masked where the label is unknown. Single-label softmax: cross-entropy with class weights
N / (K * N_c), so every class contributes equally."""
import torch
import torch.nn.functional as F


def bce_weights(y):
    """y: [N, L] float with NaN for unknown. Returns (w_p, w_n, n_pos, n_neg) per label."""
    known = ~torch.isnan(y)
    n = known.sum(0).double()
    n_pos = torch.where(known, y, torch.zeros_like(y)).sum(0).double()
    n_neg = n - n_pos
    safe = torch.clamp(n, min=1)
    return (n_neg / safe).float(), (n_pos / safe).float(), n_pos.long(), n_neg.long()


def weighted_bce(logits, y, w_p, w_n):
    """-(w_p y log f(x) + w_n (1 - y) log(1 - f(x))), averaged over the known entries only."""
    known = ~torch.isnan(y)
    t = torch.where(known, y, torch.zeros_like(y))
    per = -(w_p * t * F.logsigmoid(logits) + w_n * (1 - t) * F.logsigmoid(-logits))
    per = torch.where(known, per, torch.zeros_like(per))
    return per.sum() / torch.clamp(known.sum(), min=1)


def class_weights(target, k):
    """target: [N] long, -1 = unknown. w_c = N / (K * N_c); a class absent from training gets 0."""
    t = target[target >= 0]
    counts = torch.bincount(t, minlength=k).double()
    w = torch.where(counts > 0, t.numel() / (k * torch.clamp(counts, min=1)), torch.zeros_like(counts))
    return w.float(), counts.long()


def weighted_ce(logits, target, weights):
    if (target >= 0).sum() == 0:
        return logits.sum() * 0
    return F.cross_entropy(logits, target, weight=weights, ignore_index=-1)
