package org.cxrgateway.deploy;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Null-safe navigation of snakeyaml's untyped maps. */
final class Manifests {

    private Manifests() {
    }

    static Object get(Object node, String... path) {
        Object n = node;
        for (String p : path) {
            if (!(n instanceof Map<?, ?> m)) {
                return null;
            }
            n = m.get(p);
        }
        return n;
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> map(Object node, String... path) {
        Object n = get(node, path);
        return n instanceof Map<?, ?> m ? (Map<String, Object>) m : Map.of();
    }

    static List<Object> list(Object node) {
        return node instanceof List<?> l ? new ArrayList<>(l) : List.of();
    }

    static List<Object> list(Object node, String... path) {
        return list(get(node, path));
    }

    static String str(Object node, String... path) {
        Object v = get(node, path);
        return v == null ? null : String.valueOf(v);
    }

    /** The pod spec of a workload, or null for other kinds. */
    static Map<String, Object> podSpec(Map<String, Object> o) {
        Object kind = o.get("kind");
        if ("Deployment".equals(kind) || "StatefulSet".equals(kind)) {
            return map(o, "spec", "template", "spec");
        }
        return null;
    }

    @SuppressWarnings("unchecked")
    static List<Map<String, Object>> containers(Map<String, Object> o) {
        Map<String, Object> spec = podSpec(o);
        List<Map<String, Object>> out = new ArrayList<>();
        if (spec != null) {
            for (Object c : list(spec.get("containers"))) {
                out.add((Map<String, Object>) c);
            }
        }
        return out;
    }

    /** The value of a container's env var set with value: (not valueFrom), or null. */
    static String env(Map<String, Object> container, String name) {
        for (Object e : list(container.get("env"))) {
            if (name.equals(get(e, "name"))) {
                return str(e, "value");
            }
        }
        return null;
    }

    static long number(Object v) {
        return v == null ? -1 : Long.parseLong(String.valueOf(v));
    }
}
