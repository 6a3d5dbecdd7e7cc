#!/usr/bin/python3
"""PyTorch eager reference for inference-bench.sh: same package weights, same batch, N images."""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "main", "python"))
import cxr_models  # noqa: E402

pkg, n, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
model, _ = cxr_models.load_package_model(pkg)
x = torch.randn(batch, 3, 224, 224)
with torch.inference_mode():
    model(x)
    t0 = time.perf_counter()
    rounds = max(1, n // batch)
    for _ in range(rounds):
        model(x)
    s = time.perf_counter() - t0
print("torch_eager_img_s=%.2f" % (rounds * batch / s))
