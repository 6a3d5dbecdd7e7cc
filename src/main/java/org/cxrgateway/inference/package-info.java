/** Model packages, inference engines (ONNX Runtime CPU, TensorRT / CUDA on GPU) and the worker. */
package org.cxrgateway.inference;
