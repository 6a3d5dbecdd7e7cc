#!/usr/bin/python3
"""PyTorch reference for inference-bench.sh: same package weights, same batch, N images.

The peer runs at its best CPU configuration: inference_mode, and both memory formats tried
(contiguous NCHW and channels_last, which lets oneDNN skip layout reorders); the faster one is
the figure compared against, and both are printed.
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "main", "python"))
import cxr_models  # noqa: E402

pkg, n, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
model, manifest = cxr_models.load_package_model(pkg)
c, size = manifest["input"]["channels"], manifest["input"]["size"]
model.eval()
rounds = max(1, n // batch)
best = 0.0
for fmt_name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
    m = model.to(memory_format=fmt)
    x = torch.randn(batch, c, size, size).to(memory_format=fmt)
    with torch.inference_mode():
        m(x)  # warm-up: oneDNN primitive creation
        t0 = time.perf_counter()
        for _ in range(rounds):
            m(x)
        s = time.perf_counter() - t0
    ips = rounds * batch / s
    print("torch_%s_img_s=%.2f" % (fmt_name, ips))
    best = max(best, ips)
print("torch_eager_img_s=%.2f" % best)
