package org.cxrgateway.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Runs the dcmtk and dicom3tools binaries that tests use as real peers. */
public final class Tools {

    public record Result(int exit, String out) {
        public List<String> lines(String marker) {
            List<String> l = new ArrayList<>();
            for (String s : out.split("\n")) {
                if (s.contains(marker)) {
                    l.add(s);
                }
            }
            return l;
        }
    }

    private Tools() {
    }

    public static Result run(String... cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IOException("timed out: " + String.join(" ", cmd));
        }
        return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8));
    }

    /** dciodvfy error lines (it exits 0 even with errors, so the output is what counts). */
    public static List<String> dciodvfyErrors(Path file) throws IOException, InterruptedException {
        return run("dciodvfy", "-new", file.toString()).lines("Error");
    }
}
