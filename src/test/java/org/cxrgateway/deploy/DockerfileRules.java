package org.cxrgateway.deploy;

import com.fasterxml.jackson.databind.JsonNode;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * The rules our images must keep, applied to a Dockerfile as parsed by dockerfile-ast (see {@link NodeLint}).
 * Returns human-readable violations rather than failing on the first, so one run shows everything wrong.
 */
final class DockerfileRules {

    /** Every instruction of the Dockerfile reference; anything else is a typo or a parser disagreement. */
    static final Set<String> KNOWN = Set.of("FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD",
            "COPY", "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK",
            "SHELL");

    private DockerfileRules() {
    }

    /**
     * @param parsed    one entry of lint.mjs' "dockerfiles" answer
     * @param dockerfile the Dockerfile's path, for its sibling .dockerignore
     * @param context   the build context (the repository root) that COPY sources are relative to
     */
    static List<String> problems(JsonNode parsed, Path dockerfile, Path context) {
        List<String> problems = new ArrayList<>();
        for (JsonNode d : parsed.get("diagnostics")) {
            problems.add("line " + d.get("line").asInt() + ": " + d.get("message").asText());
        }
        List<JsonNode> instructions = new ArrayList<>();
        parsed.get("instructions").forEach(instructions::add);
        if (instructions.isEmpty()) {
            problems.add("no instructions");
            return problems;
        }
        for (JsonNode i : instructions) {
            if (!KNOWN.contains(keyword(i))) {
                problems.add("line " + i.get("line").asInt() + ": unknown instruction " + keyword(i));
            }
        }
        // Only ARG may come before the first FROM (it can parameterise the base image).
        JsonNode first = instructions.stream().filter(i -> !keyword(i).equals("ARG")).findFirst().orElseThrow();
        if (!keyword(first).equals("FROM")) {
            problems.add("first instruction is " + keyword(first) + ", not FROM");
        }

        Set<String> stages = new HashSet<>();
        int finalStage = 0;
        for (int n = 0; n < instructions.size(); n++) {
            JsonNode i = instructions.get(n);
            if (keyword(i).equals("FROM")) {
                finalStage = n;
                List<String> args = args(i);
                if (args.size() == 3 && args.get(1).equalsIgnoreCase("AS")) {
                    stages.add(args.get(2).toLowerCase(Locale.ROOT));
                }
            }
        }
        List<JsonNode> last = instructions.subList(finalStage, instructions.size());

        // What the running container is made of: only the final stage counts.
        String user = null;
        for (JsonNode i : last) {
            if (keyword(i).equals("USER")) {
                user = args(i).isEmpty() ? "" : args(i).get(0);
            }
        }
        if (user == null) {
            problems.add("final stage has no USER: the container would run as root");
        } else {
            String name = user.split(":", 2)[0];
            if (name.equals("root") || name.equals("0") || name.isEmpty()) {
                problems.add("final stage runs as root (USER " + user + ")");
            }
        }
        List<JsonNode> health = last.stream().filter(i -> keyword(i).equals("HEALTHCHECK")).toList();
        if (health.isEmpty()) {
            problems.add("final stage has no HEALTHCHECK");
        } else if (args(health.get(health.size() - 1)).stream().noneMatch(a -> a.contains("/q/health/"))) {
            problems.add("HEALTHCHECK does not probe a /q/health endpoint");
        }
        Set<String> exposed = new HashSet<>();
        last.stream().filter(i -> keyword(i).equals("EXPOSE"))
                .forEach(i -> args(i).forEach(a -> exposed.add(a.split("/", 2)[0])));
        for (String port : List.of("11112", "8080")) {
            if (!exposed.contains(port)) {
                problems.add("port " + port + " is not EXPOSEd");
            }
        }
        List<JsonNode> entry = last.stream().filter(i -> keyword(i).equals("ENTRYPOINT")).toList();
        if (entry.isEmpty()) {
            problems.add("final stage has no ENTRYPOINT");
        } else {
            JsonNode json = entry.get(entry.size() - 1).get("json");
            // Exec form, so java is PID 1 and gets SIGTERM for a graceful shutdown.
            if (json == null || json.isNull() || json.isEmpty()) {
                problems.add("ENTRYPOINT is not in exec (JSON) form");
            } else if (!json.toString().contains("quarkus-run.jar")) {
                problems.add("ENTRYPOINT does not run quarkus-run.jar: " + json);
            }
        }
        boolean dataVolume = last.stream().filter(i -> keyword(i).equals("VOLUME"))
                .anyMatch(i -> (i.get("json").isArray() ? i.get("json").toString() : args(i).toString())
                        .contains("/data"));
        if (!dataVolume) {
            problems.add("no VOLUME for /data (cxr.data-dir: spool and outbox)");
        }

        List<String> ignore = dockerignore(dockerfile);
        for (JsonNode i : instructions) {
            if (!keyword(i).equals("COPY") && !keyword(i).equals("ADD")) {
                continue;
            }
            String from = flag(i, "from");
            List<String> args = args(i);
            if (from != null) {
                if (!stages.contains(from.toLowerCase(Locale.ROOT))) {
                    problems.add("line " + i.get("line").asInt() + ": COPY --from=" + from + " names no earlier stage");
                }
                continue;
            }
            for (String source : args.subList(0, Math.max(0, args.size() - 1))) {
                if (!Files.exists(context.resolve(source))) {
                    problems.add("line " + i.get("line").asInt() + ": COPY source " + source
                            + " does not exist in the build context");
                } else if (ignore != null && !reincluded(ignore, source)) {
                    problems.add("line " + i.get("line").asInt() + ": COPY source " + source
                            + " is excluded by " + dockerfile.getFileName() + ".dockerignore");
                }
            }
        }
        return problems;
    }

    static String keyword(JsonNode i) {
        return i.get("keyword").asText().toUpperCase(Locale.ROOT);
    }

    static List<String> args(JsonNode i) {
        List<String> out = new ArrayList<>();
        i.get("args").forEach(a -> out.add(a.asText()));
        return out;
    }

    static String flag(JsonNode i, String name) {
        for (JsonNode f : i.get("flags")) {
            if (f.get("name").asText().equals(name)) {
                return f.get("value").asText();
            }
        }
        return null;
    }

    /** BuildKit's per-Dockerfile ignore file, or null where there is none. */
    private static List<String> dockerignore(Path dockerfile) {
        Path p = dockerfile.resolveSibling(dockerfile.getFileName() + ".dockerignore");
        if (!Files.exists(p)) {
            return null;
        }
        try {
            return Files.readAllLines(p).stream().map(String::strip)
                    .filter(l -> !l.isEmpty() && !l.startsWith("#")).toList();
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /**
     * Our ignore files exclude everything ("**") and re-include with "!path" or "!dir/**"; a source survives
     * when some re-include names it, lies under it, or lies above it (COPY src keeps src/main).
     */
    private static boolean reincluded(List<String> ignore, String source) {
        if (!ignore.contains("**")) {
            return true;
        }
        String s = source.replaceAll("/+$", "");
        for (String line : ignore) {
            if (!line.startsWith("!")) {
                continue;
            }
            String p = line.substring(1).replaceAll("/\\*\\*$", "").replaceAll("/+$", "");
            if (s.equals(p) || s.startsWith(p + "/") || p.startsWith(s + "/")) {
                return true;
            }
        }
        return false;
    }
}
