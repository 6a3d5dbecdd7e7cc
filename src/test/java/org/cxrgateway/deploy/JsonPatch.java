package org.cxrgateway.deploy;

import java.util.List;
import java.util.Map;
import java.util.Objects;

/** RFC 6902 add/replace/remove/test on snakeyaml's maps and lists, as kustomize applies them. */
final class JsonPatch {

    private JsonPatch() {
    }

    /** Applies one operation in place; returns why it could not be applied, or null. */
    @SuppressWarnings("unchecked")
    static String apply(Object doc, Map<String, Object> op) {
        String kind = String.valueOf(op.get("op"));
        String path = String.valueOf(op.get("path"));
        if (!path.startsWith("/")) {
            return "path " + path + " does not start with /";
        }
        String[] parts = path.substring(1).split("/", -1);
        for (int i = 0; i < parts.length; i++) {
            parts[i] = parts[i].replace("~1", "/").replace("~0", "~");
        }
        Object parent = doc;
        for (int i = 0; i < parts.length - 1; i++) {
            parent = child(parent, parts[i]);
            if (parent == null) {
                return kind + " " + path + ": /" + String.join("/", List.of(parts).subList(0, i + 1)) + " does not exist";
            }
        }
        String last = parts[parts.length - 1];
        Object current = child(parent, last);
        switch (kind) {
            case "test":
                return Objects.equals(String.valueOf(current), String.valueOf(op.get("value"))) ? null
                        : "test " + path + ": is " + current + ", expected " + op.get("value");
            case "remove":
            case "replace":
                if (current == null) {
                    return kind + " " + path + ": does not exist";
                }
                if (parent instanceof Map<?, ?> m) {
                    if (kind.equals("remove")) {
                        m.remove(last);
                    } else {
                        ((Map<String, Object>) m).put(last, op.get("value"));
                    }
                } else {
                    List<Object> l = (List<Object>) parent;
                    int idx = Integer.parseInt(last);
                    if (kind.equals("remove")) {
                        l.remove(idx);
                    } else {
                        l.set(idx, op.get("value"));
                    }
                }
                return null;
            case "add":
                if (parent instanceof Map<?, ?> m) {
                    ((Map<String, Object>) m).put(last, op.get("value"));
                } else if (parent instanceof List<?> l) {
                    if (last.equals("-")) {
                        ((List<Object>) l).add(op.get("value"));
                    } else {
                        ((List<Object>) l).add(Integer.parseInt(last), op.get("value"));
                    }
                } else {
                    return "add " + path + ": parent is not a mapping or list";
                }
                return null;
            default:
                return "unsupported op " + kind;
        }
    }

    private static Object child(Object node, String key) {
        if (node instanceof Map<?, ?> m) {
            return m.get(key);
        }
        if (node instanceof List<?> l && key.matches("\\d+")) {
            int i = Integer.parseInt(key);
            return i < l.size() ? l.get(i) : null;
        }
        return null;
    }
}
