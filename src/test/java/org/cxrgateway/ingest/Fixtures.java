package org.cxrgateway.ingest;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Runs the real peers of the ingest tests (python3 + pydicom, dcmtk) as processes. */
final class Fixtures {

    static final String PYTHON = "/usr/bin/python3";
    static final Path SCRIPT = Path.of("src/test/python/dicom_fixtures.py").toAbsolutePath();

    record Result(int exit, String output) {
    }

    private Fixtures() {
    }

    static Path newDir(String name) throws IOException {
        Path base = Path.of("target", "test-data");
        Files.createDirectories(base);
        return Files.createTempDirectory(base, name + "-").toAbsolutePath();
    }

    static Result run(Path dir, String... command) throws IOException, InterruptedException {
        return run(dir, List.of(), command);
    }

    static Result run(Path dir, List<String> env, String... command) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
        if (dir != null) {
            pb.directory(dir.toFile());
        }
        for (String kv : env) {
            int eq = kv.indexOf('=');
            pb.environment().put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        Process p = pb.start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IOException("timed out: " + Arrays.toString(command));
        }
        return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8));
    }

    static Result runOk(Path dir, String... command) throws IOException, InterruptedException {
        Result r = run(dir, command);
        if (r.exit() != 0) {
            throw new IOException(Arrays.toString(command) + " failed (" + r.exit() + "):\n" + r.output());
        }
        return r;
    }

    /** Generates the synthetic cases; returns the StudyInstanceUID they share. */
    static String cases(Path dir) throws IOException, InterruptedException {
        String out = runOk(null, PYTHON, SCRIPT.toString(), "cases", dir.toString()).output().trim();
        String[] lines = out.split("\n");
        return lines[lines.length - 1].trim();
    }

    static byte[] reference(Path dcm) throws IOException, InterruptedException {
        Path ref = dcm.resolveSibling(dcm.getFileName() + ".ref");
        runOk(null, PYTHON, SCRIPT.toString(), "reference", dcm.toString(), ref.toString());
        return Files.readAllBytes(ref);
    }

    /** The reference rendering shrunk to width x height by OpenCV's area average (cv2.INTER_AREA). */
    static byte[] reference(Path dcm, int width, int height) throws IOException, InterruptedException {
        Path ref = dcm.resolveSibling(dcm.getFileName() + "." + width + "x" + height + ".ref");
        runOk(null, PYTHON, SCRIPT.toString(), "reference", dcm.toString(), ref.toString(),
                Integer.toString(width), Integer.toString(height));
        return Files.readAllBytes(ref);
    }

    static List<String> command(String... parts) {
        return new ArrayList<>(List.of(parts));
    }
}
