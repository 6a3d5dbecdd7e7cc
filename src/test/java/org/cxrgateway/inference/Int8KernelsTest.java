package org.cxrgateway.inference;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class Int8KernelsTest {
    /** The first lines of /proc/cpuinfo: an AMD EPYC Zen 3 (AVX2 only) and a Zen 4 (AVX-512 VNNI), trimmed. */
    static final String ZEN3 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma bmi2 sha_ni\n\nprocessor\t: 1\n";
    static final String ZEN4 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512_vnni avx512_bf16\n";
    static final String ALDER_LAKE = "flags\t\t: fpu avx2 avx_vnni\n";
    static final String NEOVERSE = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32 atomics asimddp\n";

    @Test
    void int32DotProductsFromTheCpuFlags() {
        assertFalse(Int8Kernels.int32DotProducts("amd64", ZEN3));
        assertTrue(Int8Kernels.int32DotProducts("amd64", ZEN4));
        assertTrue(Int8Kernels.int32DotProducts("x86_64", ALDER_LAKE));
        assertTrue(Int8Kernels.int32DotProducts("aarch64", NEOVERSE));
        assertFalse(Int8Kernels.int32DotProducts("aarch64", "Features\t: fp asimd\n"));
        assertFalse(Int8Kernels.int32DotProducts("amd64", ""), "unknown flags: 7-bit weights only");
        assertFalse(Int8Kernels.int32DotProducts("riscv64", ZEN4));
        // the flag must be a whole word: avx512_vnni_x is not avx512_vnni
        assertFalse(Int8Kernels.int32DotProducts("amd64", "flags\t: avx512_vnnix avx_vnni2\n"));
    }

    @Test
    void eightBitWeightsAreRefusedWithoutInt32DotProducts() {
        var eight = new ModelManifest.Int8("model.int8.onnx", "qdq-u8s8", 8, List.of(), null, null, null);
        var seven = new ModelManifest.Int8("model.int8.onnx", "qdq-u8s8", 7, List.of(), null, null, null);
        ModelPackageException e = assertThrows(ModelPackageException.class, () -> Int8Kernels.check("model package x", eight, false));
        assertTrue(e.getMessage().contains("8-bit weights") && e.getMessage().contains("--weight-bits 7"), e.getMessage());
        assertDoesNotThrow(() -> Int8Kernels.check("model package x", eight, true));
        assertDoesNotThrow(() -> Int8Kernels.check("model package x", seven, false));
        assertDoesNotThrow(() -> Int8Kernels.check("model package x", null, false));
    }
}
