package org.cxrgateway.deploy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs src/test/manifest-lint/lint.mjs under node: dockerfile-ast/dockerfile-utils for Dockerfiles and
 * kubernetes-models' bundled JSON schemas for Kubernetes objects. Its npm dependencies are installed with
 * {@code npm ci} (pinned by package-lock.json) into target/manifest-lint on first use, so a fresh clone
 * needs no manual step; later runs reuse them and need no network.
 */
final class NodeLint {

    static final ObjectMapper JSON = new ObjectMapper();

    private NodeLint() {
    }

    static Path repoRoot() {
        Path p = Path.of("").toAbsolutePath();
        while (p != null && !Files.exists(p.resolve("pom.xml"))) {
            p = p.getParent();
        }
        if (p == null) {
            throw new IllegalStateException("no pom.xml above " + Path.of("").toAbsolutePath());
        }
        return p;
    }

    /** Writes {@code input} as JSON, runs the linter on it and returns its JSON answer. */
    static synchronized JsonNode run(Object input) throws IOException, InterruptedException {
        Path root = repoRoot();
        Path src = root.resolve("src/test/manifest-lint");
        Path work = root.resolve("target/manifest-lint");
        Files.createDirectories(work);
        boolean lockChanged = !Files.exists(work.resolve("package-lock.json"))
                || Files.mismatch(src.resolve("package-lock.json"), work.resolve("package-lock.json")) != -1;
        for (String f : List.of("package.json", "package-lock.json", "lint.mjs")) {
            Files.copy(src.resolve(f), work.resolve(f), StandardCopyOption.REPLACE_EXISTING);
        }
        if (lockChanged || !Files.isDirectory(work.resolve("node_modules/dockerfile-utils"))) {
            exec(work, 300, "npm", "ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error");
        }
        Path in = Files.createTempFile(work, "input", ".json");
        try {
            JSON.writeValue(in.toFile(), input);
            return JSON.readTree(exec(work, 120, "node", "lint.mjs", in.toString()));
        } finally {
            Files.deleteIfExists(in);
        }
    }

    private static String exec(Path dir, long timeoutSeconds, String... command)
            throws IOException, InterruptedException {
        Path out = Files.createTempFile(dir, "out", ".txt");
        Path err = Files.createTempFile(dir, "err", ".txt");
        try {
            Process p;
            try {
                p = new ProcessBuilder(new ArrayList<>(List.of(command))).directory(dir.toFile())
                        .redirectOutput(out.toFile()).redirectError(err.toFile()).start();
            } catch (IOException e) {
                throw new IllegalStateException(command[0] + " is needed by the deploy/docker lint tests "
                        + "(Debian: apt-get install nodejs npm)", e);
            }
            if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                p.destroyForcibly().waitFor();
                throw new IllegalStateException(String.join(" ", command) + " timed out after " + timeoutSeconds + " s");
            }
            if (p.exitValue() != 0) {
                throw new IllegalStateException(String.join(" ", command) + " exited " + p.exitValue() + ": "
                        + Files.readString(err, StandardCharsets.UTF_8));
            }
            return Files.readString(out, StandardCharsets.UTF_8);
        } finally {
            Files.deleteIfExists(out);
            Files.deleteIfExists(err);
        }
    }
}
