package org.cxrgateway.inference;

/**
 * Which graph of a package runs ({@code cxr.inference.precision}): fp32, the package's model.onnx; int8,
 * its INT8 variant (manifest field int8, written by src/main/python/quantize.py).
 */
public enum Precision {
    fp32, int8
}
