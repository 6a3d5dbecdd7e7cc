package org.cxrgateway.inference;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtProvider;
import org.junit.jupiter.api.Test;

import java.util.EnumSet;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Engine selection: TensorRT first with CUDA fallback on a GPU build; a clear error (no silent CPU) without one. */
class ExecutionProvidersTest {

    @Test
    void gpuBuildPlansTensorRtThenCuda() {
        EnumSet<OrtProvider> gpu = EnumSet.of(OrtProvider.CPU, OrtProvider.CUDA, OrtProvider.TENSOR_RT);
        assertEquals(List.of(OrtProvider.TENSOR_RT, OrtProvider.CUDA), ExecutionProviders.plan(EngineKind.tensorrt, gpu));
        assertEquals(List.of(OrtProvider.CUDA), ExecutionProviders.plan(EngineKind.cuda, gpu));
        assertEquals(List.of(), ExecutionProviders.plan(EngineKind.cpu, gpu));
    }

    @Test
    void tensorRtWithoutCudaIsRefused() {
        EngineUnavailableException e = assertThrows(EngineUnavailableException.class,
                () -> ExecutionProviders.plan(EngineKind.tensorrt, EnumSet.of(OrtProvider.CPU, OrtProvider.TENSOR_RT)));
        assertTrue(e.getMessage().contains("CUDA"), e.getMessage());
    }

    @Test
    void thisCpuBuildRefusesTensorRtWithAClearError() {
        EnumSet<OrtProvider> here = OrtEnvironment.getAvailableProviders();
        assertFalse(here.contains(OrtProvider.TENSOR_RT), "this test documents the CPU build; the gpu profile has TensorRT");
        EngineUnavailableException e = assertThrows(EngineUnavailableException.class, () -> ExecutionProviders.plan(EngineKind.tensorrt, here));
        assertTrue(e.getMessage().contains("cxr.inference.engine=tensorrt") && e.getMessage().contains("gpu")
                && e.getMessage().contains("TensorRT 10") && e.getMessage().contains("docker/GPU.md"), e.getMessage());
        e = assertThrows(EngineUnavailableException.class, () -> ExecutionProviders.plan(EngineKind.cuda, here));
        assertTrue(e.getMessage().contains("CUDA"), e.getMessage());
        assertEquals(List.of(), ExecutionProviders.plan(EngineKind.cpu, here));
    }
}
