package org.cxrgateway.inference;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Whether this CPU's ONNX Runtime U8S8 kernels sum 8-bit weight products exactly. On x86 without VNNI, MLAS uses
 * VPMADDUBSW, which adds two u8 x s8 products into a saturating int16 (255 x 127 x 2 > 32767): 8-bit weights then
 * overflow (quantize.py WEIGHT_QMAX: max |dp| 0.90 on a tiny DenseNet), and only 7-bit ones (|w| <= 64) are exact.
 * With AVX512_VNNI or AVX_VNNI (VPDPBUSD) and on ARM with dot products (SDOT/UDOT) the sums are int32.
 */
final class Int8Kernels {
    private static final Pattern WORDS = Pattern.compile("\\s+");
    /** /proc/cpuinfo is a few KiB per core; a kernel that reports more is not trusted past this. */
    private static final int MAX_CPUINFO = 1 << 20;

    private Int8Kernels() {
    }

    /** Whether a package with weightBits > 7 runs exactly here: the flags of the first CPU listed in cpuinfo. */
    static boolean int32DotProducts(String arch, String cpuinfo) {
        Set<String> flags = firstFlags(cpuinfo);
        return switch (arch.toLowerCase(Locale.ROOT)) {
            case "amd64", "x86_64" -> flags.contains("avx512_vnni") || flags.contains("avx_vnni");
            case "aarch64" -> flags.contains("asimddp");
            default -> false;
        };
    }

    static boolean int32DotProducts() {
        try {
            byte[] b = Files.readAllBytes(Path.of("/proc/cpuinfo"));
            return int32DotProducts(System.getProperty("os.arch"), new String(b, 0, Math.min(b.length, MAX_CPUINFO)));
        } catch (IOException | RuntimeException e) {
            return false; // unknown: the safe answer is the one that keeps 7-bit weights only
        }
    }

    /** The words of the first "flags" (x86) or "Features" (ARM) line. */
    private static Set<String> firstFlags(String cpuinfo) {
        for (String line : cpuinfo.split("\n")) {
            int colon = line.indexOf(':');
            if (colon > 0) {
                String key = line.substring(0, colon).trim();
                if (key.equals("flags") || key.equals("Features")) {
                    return Set.of(WORDS.split(line.substring(colon + 1).trim()));
                }
            }
        }
        return Set.of();
    }

    /** Refuses an INT8 variant whose weights need int32 dot products on a CPU without them. */
    static void check(String where, ModelManifest.Int8 int8, boolean int32DotProducts) {
        Integer bits = int8 == null ? null : int8.weightBits();
        if (bits != null && bits > 7 && !int32DotProducts) {
            throw new ModelPackageException(where + ": the INT8 variant has " + bits + "-bit weights, which ONNX Runtime sums in"
                    + " saturating int16 on this CPU (no VNNI / dot-product instructions): requantise it with --weight-bits 7"
                    + " (quantize.py, cxr-model quantize --int8-weight-bits 7), or run cxr.inference.precision=fp32");
        }
    }
}
