package org.cxrgateway.inference;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtProvider;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.providers.OrtCUDAProviderOptions;
import ai.onnxruntime.providers.OrtTensorRTProviderOptions;

import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;

/**
 * Which ONNX Runtime execution providers a requested engine uses. tensorrt = TensorRT EP first
 * (FP16, engine cache, one optimisation profile covering batch 1..maxBatch), then CUDA for the nodes
 * TensorRT does not take, then CPU; cuda = CUDA then CPU. There is no silent fallback to CPU: a GPU
 * engine asked for on a build or host without it fails at start with a message saying what is
 * missing, because a worker quietly running 20x slower is worse than one that does not start.
 */
public final class ExecutionProviders {

    private ExecutionProviders() {
    }

    /** The providers to register, in priority order (CPU is implicit and always last). */
    public static List<OrtProvider> plan(EngineKind engine, EnumSet<OrtProvider> available) {
        List<OrtProvider> out = new ArrayList<>();
        switch (engine) {
            case cpu -> {
                return out;
            }
            case tensorrt -> {
                require(engine, OrtProvider.TENSOR_RT, available);
                out.add(OrtProvider.TENSOR_RT);
                require(engine, OrtProvider.CUDA, available);
                out.add(OrtProvider.CUDA);
            }
            case cuda -> {
                require(engine, OrtProvider.CUDA, available);
                out.add(OrtProvider.CUDA);
            }
        }
        return out;
    }

    private static void require(EngineKind engine, OrtProvider p, EnumSet<OrtProvider> available) {
        if (!available.contains(p)) {
            throw new EngineUnavailableException("cxr.inference.engine=" + engine + " needs the ONNX Runtime " + p
                    + " execution provider, but this build offers only " + available
                    + ". Build with the Maven profile 'gpu' (onnxruntime_gpu) and run on a host with CUDA 12, cuDNN 9"
                    + (p == OrtProvider.TENSOR_RT ? " and TensorRT 10" : "") + " (docker/GPU.md), or set cxr.inference.engine=cpu.");
        }
    }

    /** Registers the planned providers on the session options. */
    public static void configure(OrtSession.SessionOptions opts, EngineKind engine, InferenceConfig cfg, ModelManifest m) throws OrtException {
        List<OrtProvider> plan = plan(engine, OrtEnvironment.getAvailableProviders());
        for (OrtProvider p : plan) {
            try {
                if (p == OrtProvider.TENSOR_RT) {
                    OrtTensorRTProviderOptions trt = new OrtTensorRTProviderOptions(cfg.deviceId());
                    trt.add("trt_fp16_enable", cfg.trtFp16() ? "1" : "0");
                    trt.add("trt_engine_cache_enable", "1");
                    trt.add("trt_engine_cache_path", cfg.trtCacheDir());
                    trt.add("trt_timing_cache_enable", "1");
                    String in = m.input().name();
                    String shape = "x" + m.input().channels() + "x" + m.input().size() + "x" + m.input().size();
                    trt.add("trt_profile_min_shapes", in + ":1" + shape);
                    trt.add("trt_profile_opt_shapes", in + ":" + cfg.maxBatch() + shape);
                    trt.add("trt_profile_max_shapes", in + ":" + cfg.maxBatch() + shape);
                    opts.addTensorrt(trt);
                } else if (p == OrtProvider.CUDA) {
                    OrtCUDAProviderOptions cuda = new OrtCUDAProviderOptions(cfg.deviceId());
                    opts.addCUDA(cuda);
                }
            } catch (OrtException | UnsatisfiedLinkError e) {
                throw new EngineUnavailableException("cxr.inference.engine=" + engine + ": ONNX Runtime could not load the " + p
                        + " execution provider (" + e.getMessage() + "); check CUDA 12, cuDNN 9 and TensorRT 10 libraries on LD_LIBRARY_PATH (docker/GPU.md)", e);
            }
        }
    }
}
