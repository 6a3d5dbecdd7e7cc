package org.cxrgateway.inference;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;

import java.time.Duration;
import java.util.Optional;

/** Inference workers: engine, model packages and micro-batching. */
@ConfigMapping(prefix = "cxr.inference")
public interface InferenceConfig {

    /** Execution engine: cpu (ONNX Runtime CPU), cuda, or tensorrt (TensorRT EP with CUDA fallback; needs the gpu build). Default cpu. */
    @WithDefault("cpu")
    EngineKind engine();

    /**
     * fp32: each package's model.onnx; int8: its INT8 variant (manifest int8, src/main/python/quantize.py),
     * for the CPU engine. A package without one fails to load under int8 (no silent fall-back to fp32).
     * Default fp32.
     */
    @WithDefault("fp32")
    Precision precision();

    /**
     * With precision int8: an image whose INT8 score for some reported label lies within this of the label's
     * operating threshold, in log-odds (log(p / (1 - p)); 0.5 is p 0.38-0.62 around a threshold of 0.5, 0.97-0.99
     * around 0.98), is scored again by the package's FP32 model and gets its scores and Grad-CAMs, so that INT8 flips
     * no decision where its error on the image is below this margin ({@link DecisionGuard}; the README's INT8
     * variant has the errors measured and the share of images scored twice). 0 turns the check off: every image
     * INT8 alone. Set, it applies to every package. Default: each package's measured margin (manifest
     * int8.decisionMargin, written by cxr-model validate --precision int8 --write-margin), else 0.5.
     */
    Optional<Double> int8DecisionMargin();

    /** ONNX Runtime intra-op threads per session. Default 2. */
    @WithDefault("2")
    int intraOpThreads();

    /**
     * ONNX Runtime intra-op threads busy-wait between operators rather than sleep (see {@link SessionSettings}):
     * faster on a machine of the worker's own; set false where other busy processes share the cores. Default true.
     */
    @WithDefault("true")
    boolean intraOpSpinning();

    /**
     * ONNX Runtime's CPU memory arena: freed blocks are reused by the next batch, never returned (see
     * {@link SessionSettings}). Default true.
     */
    @WithDefault("true")
    boolean cpuArena();

    /**
     * Folder holding model packages (one sub-folder or .zip per package). Default: none, which runs the
     * built-in demo packages chest14 and covid3 (untrained, not for diagnostic use).
     */
    Optional<String> packagesDir();

    /** Largest micro-batch, in images, across studies. Default 8. */
    @WithDefault("8")
    int maxBatch();

    /**
     * Longest time the first image of a batch waits for more images, counted from when it was queued, while the
     * engine is busy; after the engine was idle this long, what is queued runs at once (a lone study pays no wait).
     * Default 50ms.
     */
    @WithDefault("50ms")
    Duration maxWait();

    /** TensorRT engine cache folder (put it on a volume: building engines takes minutes). Default ${cxr.data-dir}/trt-cache. */
    @WithDefault("${cxr.data-dir:data}/trt-cache")
    String trtCacheDir();

    /**
     * Where ONNX Runtime's native libraries are kept between starts (checked against its jar at each start), instead
     * of a fresh copy in the temporary folder per start that a killed worker leaves behind. Ignored where the JVM
     * sets onnxruntime.native.path. Default ${cxr.data-dir}/onnxruntime.
     */
    @WithDefault("${cxr.data-dir:data}/onnxruntime")
    String nativeDir();

    /** TensorRT FP16 precision. Default true. */
    @WithDefault("true")
    boolean trtFp16();

    /** GPU device ordinal for cuda / tensorrt. Default 0. */
    @WithDefault("0")
    int deviceId();

    /** Kafka consumer group of the workers. Default cxr-inference. */
    @WithDefault("cxr-inference")
    String groupId();

    /** Where the built-in demo packages are materialised (their weights are regenerated there). Default ${cxr.data-dir}/models. */
    @WithDefault("${cxr.data-dir:data}/models")
    String workDir();
}
