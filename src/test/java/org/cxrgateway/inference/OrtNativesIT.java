package org.cxrgateway.inference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.cxrgateway.testing.GatewayProcess;
import org.cxrgateway.testing.OrthancPeer;
import org.junit.jupiter.api.Test;

/**
 * A gateway killed by kill -9 leaves nothing in the temporary folder: ONNX Runtime's libraries live in
 * cxr.inference.native-dir, copied there at the first start and reused, unchanged, at the next. A copy that a
 * killed process left unfinished in that folder is removed once it is old; a recent one, which may be another
 * process's copy in progress, is kept.
 */
class OrtNativesIT {

    @Test
    void killedWorkersLeaveNoLibraryCopiesBehindAndTheNextStartReusesTheFolder() throws Exception {
        Path work = Files.createTempDirectory(Path.of("target"), "ort-natives-").toAbsolutePath();
        Path tmp = Files.createDirectories(work.resolve("tmp"));
        Path natives = work.resolve("data").resolve("onnxruntime");
        Map<String, String> c = new TreeMap<>();
        c.put("java.io.tmpdir", tmp.toString());
        c.put("cxr.roles", "all");
        c.put("cxr.data-dir", work.resolve("data").toString());
        c.put("cxr.kafka.embedded.port", "0");
        c.put("cxr.kafka.embedded.controller-port", "0");
        c.put("cxr.listener.port", Integer.toString(OrthancPeer.freePort()));

        GatewayProcess first = new GatewayProcess(work.resolve("first.log"), c).start().awaitReady(Duration.ofSeconds(180));
        first.kill9();
        assertTrue(first.log().contains("ONNX Runtime's libraries [libonnxruntime.so, libonnxruntime4j_jni.so] copied to"),
                first.tail());
        assertEquals(List.of(), libraries(tmp), "nothing of ONNX Runtime's left in java.io.tmpdir");
        Path library = natives.resolve("libonnxruntime.so");
        long modified = Files.getLastModifiedTime(library).toMillis();

        // what a kill during a copy leaves: DurableFiles' temporary name in the folder
        Path stale = Files.write(natives.resolve(".libonnxruntime.so.1234.tmp"), new byte[] {1, 2, 3});
        Files.setLastModifiedTime(stale, java.nio.file.attribute.FileTime.fromMillis(
                System.currentTimeMillis() - OrtNatives.STALE_COPY.toMillis() - 60_000));
        Path recent = Files.write(natives.resolve(".libonnxruntime.so.5678.tmp"), new byte[] {4, 5, 6});

        try (GatewayProcess second = new GatewayProcess(work.resolve("second.log"), c).start()) {
            second.awaitReady(Duration.ofSeconds(180));
            second.kill9();
            assertFalse(second.log().contains("] copied to"), "reused, not copied again: " + second.tail());
            assertTrue(second.log().contains("removed .libonnxruntime.so.1234.tmp, an unfinished copy"), second.tail());
        }
        assertEquals(modified, Files.getLastModifiedTime(library).toMillis());
        assertFalse(Files.exists(stale), "an old unfinished copy is removed");
        assertTrue(Files.exists(recent), "a recent one may be another process's copy in progress: kept");
        assertEquals(List.of(), libraries(tmp), "nothing of ONNX Runtime's left in java.io.tmpdir");
    }

    /** Shared libraries anywhere under dir. */
    private static List<Path> libraries(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(p -> p.getFileName().toString().endsWith(".so")).toList();
        }
    }
}
