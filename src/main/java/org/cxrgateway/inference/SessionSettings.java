package org.cxrgateway.inference;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;

/**
 * The ONNX Runtime session settings of every session the worker opens (the model's, its guided graph's, and the
 * raw-ORT baseline of src/bench/inference-bench.sh, so that the bench compares like with like). One place, so
 * that no session drifts from the documented configuration:
 * <ul>
 * <li>intra-op threads = cxr.inference.intra-op-threads: ORT parallelises inside each operator; one thread owns
 * the sessions (MicroBatcher), so there is nothing for inter-op threads to do (inter-op 1, sequential execution);</li>
 * <li>spinning = cxr.inference.intra-op-spinning ({@value #SPINNING_KEY}): between operators the intra-op
 * threads busy-wait instead of sleeping. DenseNet-121 runs a few hundred short operators per batch, and waking
 * sleeping threads for each costs throughput on a machine of its own; on a machine shared with other busy
 * processes the spinning burns CPU they could use, so turn it off there;</li>
 * <li>CPU arena = cxr.inference.cpu-arena: ORT keeps freed blocks and hands them to the next run, so batch
 * after batch allocates nothing; it grows to the largest batch's need (bounded by cxr.inference.max-batch, the
 * warm-up runs that batch) and is never given back, so turn it off only to trade speed for a smaller resident
 * size;</li>
 * <li>graph optimisation ALL (constant folding, Conv+BN fusion, layout transforms), except where a fidelity test
 * asks for the unfused graph.</li>
 * </ul>
 */
public record SessionSettings(int intraOpThreads, boolean spinning, boolean cpuArena) {

    /** ONNX Runtime's session config key for intra-op spinning ("1" spin, "0" sleep). */
    public static final String SPINNING_KEY = "session.intra_op.allow_spinning";

    /**
     * ONNX Runtime's session config key that stops a session's intra-op threads spinning as soon as its run returns
     * ("1"), where they would otherwise spin on for a while. Set on two sessions that run in turn on the same cores
     * (OrtModel's INT8 variant and its FP32 referee), so that neither's threads spin against the other's work.
     */
    public static final String FORCE_SPINNING_STOP_KEY = "session.force_spinning_stop";

    public SessionSettings {
        if (intraOpThreads < 0) { // 0: ONNX Runtime's own choice, one thread per physical core
            throw new IllegalArgumentException("cxr.inference.intra-op-threads must be >= 0, was " + intraOpThreads);
        }
    }

    /** The documented defaults (ONNX Runtime's own for spinning and arena) at the given thread count. */
    public static SessionSettings defaults(int intraOpThreads) {
        return new SessionSettings(intraOpThreads, true, true);
    }

    public static SessionSettings of(InferenceConfig c) {
        return new SessionSettings(c.intraOpThreads(), c.intraOpSpinning(), c.cpuArena());
    }

    /** New options with these settings and graph optimisation ALL; the caller closes them. */
    public OrtSession.SessionOptions options() throws OrtException {
        return options(OrtSession.SessionOptions.OptLevel.ALL_OPT);
    }

    public OrtSession.SessionOptions options(OrtSession.SessionOptions.OptLevel level) throws OrtException {
        OrtSession.SessionOptions o = new OrtSession.SessionOptions();
        try {
            o.setIntraOpNumThreads(intraOpThreads);
            o.setInterOpNumThreads(1);
            o.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
            o.setOptimizationLevel(level);
            o.addConfigEntry(SPINNING_KEY, spinning ? "1" : "0");
            o.setCPUArenaAllocator(cpuArena);
            return o;
        } catch (OrtException | RuntimeException e) {
            o.close();
            throw e;
        }
    }
}
