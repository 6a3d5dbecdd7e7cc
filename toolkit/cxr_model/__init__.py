"""cxr-gateway model toolkit: make and check model packages by the founding lecture's method.

Training and validation run in Python (Debian's python3-torch); the packages they write are served
unchanged by the Java gateway, and validation scores through the gateway's own Java inference path.
"""
import os
import sys

# the shared model code (DenseNet with logits + features, ONNX export, manifest writer, code catalogue)
MAIN_PYTHON = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "main", "python"))
if MAIN_PYTHON not in sys.path:
    sys.path.insert(0, MAIN_PYTHON)

NOT_FOR_DIAGNOSTIC_USE = "not for diagnostic use"
