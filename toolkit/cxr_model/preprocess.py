"""One preprocessing spec for training (here) and serving (inference/Preprocessor.java).

Nothing is reimplemented here: src/main/python/cxr_preprocessing.py applies a package's spec with
PIL/torchvision/skimage themselves, and PreprocessorLibraryTest shows the Java Preprocessor equal to it
within 1e-3 per element, so the tensors a model is trained on are the ones it is served.
spec_of(manifest) gives the steps of formatVersion 2, and the equivalent steps of formatVersion 1.
"""
from cxr_preprocessing import apply, spec_of, validate  # noqa: F401 (the toolkit's preprocessing interface)
