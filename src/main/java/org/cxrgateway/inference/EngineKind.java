package org.cxrgateway.inference;

/** The execution engine asked for in {@code cxr.inference.engine}. */
public enum EngineKind {
    cpu, cuda, tensorrt
}
