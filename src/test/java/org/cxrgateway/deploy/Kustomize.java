package org.cxrgateway.deploy;

import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;

import java.io.IOException;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Just enough of {@code kustomize build} to render deploy/ offline: resources (files and directories),
 * namespace, images (newName/newTag) and inline JSON 6902 patches with a kind/name target. A kustomization
 * using anything else is reported, not silently half-rendered, so the test cannot drift from what
 * {@code kubectl kustomize} would produce.
 */
final class Kustomize {

    record Doc(String source, Map<String, Object> object) {
        String kind() {
            return String.valueOf(object.get("kind"));
        }

        String name() {
            return String.valueOf(Manifests.get(object, "metadata", "name"));
        }
    }

    record Result(List<Doc> docs, List<String> problems) {
    }

    private static final Set<String> SUPPORTED = Set.of("apiVersion", "kind", "namespace", "resources", "images",
            "patches");
    private static final Set<String> CLUSTER_SCOPED = Set.of("Namespace");

    private Kustomize() {
    }

    static Yaml yaml() {
        return new Yaml(new SafeConstructor(new LoaderOptions()));
    }

    /** Every YAML document in a file, in order; null documents (a trailing ---) are dropped. */
    @SuppressWarnings("unchecked")
    static List<Object> load(Path file) {
        try (Reader r = Files.newBufferedReader(file)) {
            List<Object> docs = new ArrayList<>();
            for (Object o : yaml().loadAll(r)) {
                if (o != null) {
                    docs.add(o);
                }
            }
            return docs;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @SuppressWarnings("unchecked")
    static Result render(Path dir, Path root) {
        List<Doc> docs = new ArrayList<>();
        List<String> problems = new ArrayList<>();
        Path kfile = dir.resolve("kustomization.yaml");
        String where = root.relativize(kfile).toString();
        if (!Files.exists(kfile)) {
            problems.add(root.relativize(dir) + ": no kustomization.yaml");
            return new Result(docs, problems);
        }
        Map<String, Object> k = (Map<String, Object>) load(kfile).get(0);
        for (String key : k.keySet()) {
            if (!SUPPORTED.contains(key)) {
                problems.add(where + ": field '" + key + "' is not understood by this test's renderer");
            }
        }
        for (Object r : Manifests.list(k.get("resources"))) {
            Path p = dir.resolve(String.valueOf(r)).normalize();
            if (Files.isDirectory(p)) {
                Result sub = render(p, root);
                docs.addAll(sub.docs());
                problems.addAll(sub.problems());
            } else if (Files.isRegularFile(p)) {
                for (Object o : load(p)) {
                    if (o instanceof Map<?, ?> m) {
                        docs.add(new Doc(root.relativize(p).toString(), (Map<String, Object>) m));
                    } else {
                        problems.add(root.relativize(p) + ": a document that is not a mapping");
                    }
                }
            } else {
                problems.add(where + ": resource " + r + " does not exist");
            }
        }
        for (Object po : Manifests.list(k.get("patches"))) {
            Map<String, Object> patch = (Map<String, Object>) po;
            Map<String, Object> target = (Map<String, Object>) patch.get("target");
            if (target == null || !(patch.get("patch") instanceof String text)) {
                problems.add(where + ": only inline patches with a target are supported: " + patch);
                continue;
            }
            List<Doc> hits = docs.stream()
                    .filter(d -> Objects.equals(d.kind(), target.get("kind")))
                    .filter(d -> target.get("name") == null || Objects.equals(d.name(), target.get("name")))
                    .toList();
            if (hits.isEmpty()) {
                problems.add(where + ": patch target " + target + " matches no resource");
            }
            List<Object> ops = (List<Object>) yaml().load(text);
            for (Doc d : hits) {
                for (Object op : ops) {
                    String err = JsonPatch.apply(d.object(), (Map<String, Object>) op);
                    if (err != null) {
                        problems.add(where + ": patch on " + d.kind() + "/" + d.name() + ": " + err);
                    }
                }
            }
        }
        for (Object io : Manifests.list(k.get("images"))) {
            Map<String, Object> image = (Map<String, Object>) io;
            String name = String.valueOf(image.get("name"));
            for (Doc d : docs) {
                for (Map<String, Object> c : Manifests.containers(d.object())) {
                    String current = String.valueOf(c.get("image"));
                    String bare = current.contains(":") ? current.substring(0, current.lastIndexOf(':')) : current;
                    String tag = current.contains(":") ? current.substring(current.lastIndexOf(':') + 1) : null;
                    if (bare.equals(name)) {
                        String newName = image.get("newName") != null ? String.valueOf(image.get("newName")) : bare;
                        String newTag = image.get("newTag") != null ? String.valueOf(image.get("newTag")) : tag;
                        c.put("image", newTag == null ? newName : newName + ":" + newTag);
                    }
                }
            }
        }
        if (k.get("namespace") != null) {
            for (Doc d : docs) {
                if (!CLUSTER_SCOPED.contains(d.kind())) {
                    Map<String, Object> meta = (Map<String, Object>) d.object()
                            .computeIfAbsent("metadata", x -> new LinkedHashMap<>());
                    meta.put("namespace", k.get("namespace"));
                }
            }
        }
        return new Result(docs, problems);
    }
}
