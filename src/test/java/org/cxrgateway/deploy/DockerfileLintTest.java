package org.cxrgateway.deploy;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * No Docker engine runs here, so the images are never built in CI: this keeps docker/Dockerfile*
 * from rotting by parsing them with dockerfile-ast, linting them with dockerfile-utils, and checking
 * the rules in {@link DockerfileRules} against the repository they are built from.
 */
class DockerfileLintTest {

    static final String BROKEN = """
            RUN echo before any FROM
            FROM debian:bookworm-slim
            FOOBAR something
            COPY no-such-file.txt /app/
            COPY --from=nowhere /x /y
            EXPOSE 8080
            USER root
            CMD ["java", "-jar", "app.jar"]
            """;

    static Path root;
    static JsonNode lint;

    @BeforeAll
    static void lint() throws Exception {
        root = NodeLint.repoRoot();
        Map<String, String> files = new LinkedHashMap<>();
        for (String f : List.of("docker/Dockerfile", "docker/Dockerfile.gpu")) {
            files.put(f, Files.readString(root.resolve(f)));
        }
        files.put("fixture/broken", BROKEN);
        lint = NodeLint.run(Map.of("dockerfiles", files, "objects", List.of())).get("dockerfiles");
    }

    private static List<String> problems(String file) {
        return DockerfileRules.problems(lint.get(file), root.resolve(file), root);
    }

    private static List<String> runArgs(String file) {
        return java.util.stream.StreamSupport.stream(lint.get(file).get("instructions").spliterator(), false)
                .filter(i -> DockerfileRules.keyword(i).equals("RUN"))
                .map(i -> String.join(" ", DockerfileRules.args(i))).toList();
    }

    private static Map<String, String> env(String file) {
        Map<String, String> env = new LinkedHashMap<>();
        lint.get(file).get("instructions").forEach(i -> {
            if (DockerfileRules.keyword(i).equals("ENV")) {
                i.get("properties").forEach(p -> env.put(p.get("name").asText(), p.get("value").asText()));
            }
        });
        return env;
    }

    private static String finalBase(String file) {
        String base = null;
        for (JsonNode i : lint.get(file).get("instructions")) {
            if (DockerfileRules.keyword(i).equals("FROM")) {
                base = DockerfileRules.args(i).get(0);
            }
        }
        return base;
    }

    @Test
    void cpuImageFollowsTheRules() {
        assertEquals(List.of(), problems("docker/Dockerfile"));
        assertTrue(finalBase("docker/Dockerfile").matches("(debian:bookworm.*|eclipse-temurin:17-jre.*)"),
                finalBase("docker/Dockerfile"));
        // pixelmed.jar's manifest Class-Path names /usr/share/java jars, so the runtime needs the package.
        List<String> runs = runArgs("docker/Dockerfile");
        assertTrue(runs.stream().anyMatch(r -> r.contains("libpixelmed-java") && r.contains("jre")), runs.toString());
        assertTrue(runs.stream().anyMatch(r -> r.startsWith("mvn") && r.contains("package")), runs.toString());
        assertEquals("/data", env("docker/Dockerfile").get("CXR_DATA_DIR"));
    }

    @Test
    void gpuImageFollowsTheRules() {
        assertEquals(List.of(), problems("docker/Dockerfile.gpu"));
        assertTrue(finalBase("docker/Dockerfile.gpu").startsWith("nvcr.io/nvidia/tensorrt:"),
                finalBase("docker/Dockerfile.gpu"));
        List<String> runs = runArgs("docker/Dockerfile.gpu");
        assertTrue(runs.stream().anyMatch(r -> r.startsWith("mvn") && r.contains("-Pgpu") && r.contains("package")),
                "GPU image must build with -Pgpu (onnxruntime_gpu): " + runs);
        assertTrue(runs.stream().anyMatch(r -> r.contains("openjdk-17-jre") && r.contains("libpixelmed-java")),
                runs.toString());
        Map<String, String> env = env("docker/Dockerfile.gpu");
        assertEquals("tensorrt", env.get("CXR_INFERENCE_ENGINE"));
        assertEquals("/data", env.get("CXR_DATA_DIR"));
        String cache = env.get("CXR_INFERENCE_TRT_CACHE_DIR");
        boolean cacheIsVolume = java.util.stream.StreamSupport
                .stream(lint.get("docker/Dockerfile.gpu").get("instructions").spliterator(), false)
                .filter(i -> DockerfileRules.keyword(i).equals("VOLUME"))
                .anyMatch(i -> i.get("json").toString().contains("\"" + cache + "\""));
        assertTrue(cacheIsVolume, "TensorRT engine cache " + cache + " must be a VOLUME");
    }

    /** The rules are not vacuous: a Dockerfile breaking each of them gets a problem for each. */
    @Test
    void brokenDockerfileIsReported() {
        String all = String.join("\n", problems("fixture/broken"));
        for (String expected : List.of("Unknown instruction: FOOBAR", "unknown instruction FOOBAR",
                "first instruction is RUN", "runs as root", "no HEALTHCHECK", "port 11112 is not EXPOSEd",
                "no ENTRYPOINT", "no-such-file.txt does not exist", "--from=nowhere names no earlier stage",
                "no VOLUME for /data")) {
            assertTrue(all.contains(expected), "expected \"" + expected + "\" among:\n" + all);
        }
    }
}
