#!/usr/bin/python3
"""Locally generated checkpoints in the two foreign layouts import_weights.py accepts (tiny DenseNet
so the test is fast), plus the original model's logits on a fixed input.

    make_checkpoints.py chexnet|xrv OUT_DIR  ->  checkpoint.pt, input.f32, logits.f32

torchvision layouts (full size, 224 x 224, torchvision's own forward gives the reference logits):
    resnet50plus   ResNet-50 with the COVID-19 paper's head, fc = Linear(2048, 32), ReLU, Linear(32, 32), ReLU,
                   Linear(32, 1), saved from a DataParallel wrapper ('module.' keys)
    vgg16_bn       VGG16-BN, classifier = Linear(25088, 32), ReLU, Linear(32, 32), ReLU, Linear(32, 3)
    densenet169    DenseNet-169, classifier = Linear(1664, 2)
    resnet18       not supported (BasicBlock): the import must refuse it naming the keys
"""
import os
import re
import sys

import torch
import torchvision


def randomise_batch_norm(net):
    """Non-trivial batch-norm statistics, as in a trained network."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.75, 1.25)
            m.bias.data.uniform_(-0.1, 0.1)


def save(net, kind, out, thresholds=None):
    """The checkpoint in its public layout: chexnet as arnoweng/CheXNet released it, xrv with op_threshs."""
    sd = net.state_dict()
    if kind == "chexnet":
        # the original CheXNet release: DataParallel + a 'densenet121' attribute + pre-0.4 'norm.1' keys
        sd = {"module.densenet121." + re.sub(r"\.(norm|relu|conv)(\d)\.", r".\1.\2.", k): v for k, v in sd.items()}
        torch.save({"epoch": 1, "state_dict": sd}, os.path.join(out, "checkpoint.pt"))
    else:
        thr = thresholds.clone()
        thr[14] = float("nan")  # an output the xrv model was not trained on
        sd["op_threshs"] = thr
        torch.save(sd, os.path.join(out, "checkpoint.pt"))


def torchvision_checkpoint(kind, out):
    torch.manual_seed(16)
    mlp = lambda n_in, n_out: torch.nn.Sequential(torch.nn.Linear(n_in, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32),  # noqa: E731
                                                  torch.nn.ReLU(), torch.nn.Linear(32, n_out))
    if kind == "resnet50plus":
        net = torchvision.models.resnet50(weights=None)
        net.fc = mlp(2048, 1)
    elif kind == "vgg16_bn":
        net = torchvision.models.vgg16_bn(weights=None)
        net.classifier = mlp(25088, 3)
    elif kind == "densenet169":
        net = torchvision.models.densenet169(weights=None)
        net.classifier = torch.nn.Linear(1664, 2)
    else:
        net = torchvision.models.resnet18(weights=None)
        net.fc = torch.nn.Linear(512, 2)
    randomise_batch_norm(net)
    net.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        logits = net(x)
    x.numpy().astype("<f4").tofile(os.path.join(out, "input.f32"))
    logits.numpy().astype("<f4").tofile(os.path.join(out, "logits.f32"))
    sd = net.state_dict()
    if kind == "resnet50plus":
        sd = {"module." + k: v for k, v in sd.items()}
    torch.save(sd, os.path.join(out, "checkpoint.pt"))


def main(kind, out):
    if kind not in ("chexnet", "xrv"):
        os.makedirs(out, exist_ok=True)
        return torchvision_checkpoint(kind, out)
    torch.manual_seed(7 if kind == "chexnet" else 8)
    os.makedirs(out, exist_ok=True)
    net = torchvision.models.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16, bn_size=2)
    channels, n_out = (3, 14) if kind == "chexnet" else (1, 18)
    if channels == 1:
        net.features.conv0 = torch.nn.Conv2d(1, 16, kernel_size=7, stride=2, padding=3, bias=False)
    randomise_batch_norm(net)
    if kind == "chexnet":
        net.classifier = torch.nn.Sequential(torch.nn.Linear(net.classifier.in_features, n_out), torch.nn.Sigmoid())
        head = net.classifier[0]
    else:
        net.classifier = torch.nn.Linear(net.classifier.in_features, n_out)
        head = net.classifier
    net.eval()
    x = torch.randn(2, channels, 224, 224) * (1.0 if kind == "chexnet" else 500.0)
    with torch.no_grad():
        # xrv inputs span [-1024, 1024]: trained first-layer statistics bring them back to O(1)
        y = net.features.conv0(x)
        net.features.norm0.running_mean.copy_(y.mean(dim=(0, 2, 3)))
        net.features.norm0.running_var.copy_(y.var(dim=(0, 2, 3)))
        f = torch.relu(net.features(x))
        logits = head(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(f, 1), 1))
    x.numpy().astype("<f4").tofile(os.path.join(out, "input.f32"))
    logits.numpy().astype("<f4").tofile(os.path.join(out, "logits.f32"))
    save(net, kind, out, torch.rand(n_out) * 0.5 + 0.2)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
