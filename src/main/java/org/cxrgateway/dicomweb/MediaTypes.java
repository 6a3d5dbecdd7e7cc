package org.cxrgateway.dicomweb;

import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

/** A media type as RFC 9110 8.3.1 writes it: type/subtype, then parameters, values plain or quoted. */
record MediaTypes(String type, Map<String, String> parameters) {

    /** Parses a Content-Type value; null for null or a value without type/subtype. */
    static MediaTypes parse(String value) {
        if (value == null) {
            return null;
        }
        int semi = value.indexOf(';');
        String type = (semi < 0 ? value : value.substring(0, semi)).trim().toLowerCase(Locale.ROOT);
        if (type.indexOf('/') <= 0) {
            return null;
        }
        Map<String, String> params = new HashMap<>();
        int i = semi < 0 ? value.length() : semi + 1;
        while (i < value.length()) {
            int eq = value.indexOf('=', i);
            if (eq < 0) {
                break;
            }
            String name = value.substring(i, eq).trim().toLowerCase(Locale.ROOT);
            int j = eq + 1;
            while (j < value.length() && value.charAt(j) == ' ') {
                j++;
            }
            StringBuilder v = new StringBuilder();
            if (j < value.length() && value.charAt(j) == '"') {
                j++;
                while (j < value.length() && value.charAt(j) != '"') {
                    char c = value.charAt(j++);
                    if (c == '\\' && j < value.length()) {
                        c = value.charAt(j++);
                    }
                    v.append(c);
                }
                j = value.indexOf(';', j);
            } else {
                int end = value.indexOf(';', j);
                v.append((end < 0 ? value.substring(j) : value.substring(j, end)).trim());
                j = end;
            }
            params.put(name, v.toString());
            i = j < 0 ? value.length() : j + 1;
        }
        return new MediaTypes(type, params);
    }

    String parameter(String name) {
        return parameters.get(name);
    }
}
