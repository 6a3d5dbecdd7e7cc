package org.cxrgateway.testing;

import io.smallrye.config.WithDefault;

/** The documented default of a typed configuration property, read from its mapping, so that no test copies it. */
public final class ConfigDefaults {

    private ConfigDefaults() {
    }

    /** The {@code @WithDefault} value of {@code config}'s method {@code property}. */
    public static String of(Class<?> config, String property) {
        try {
            WithDefault d = config.getMethod(property).getAnnotation(WithDefault.class);
            if (d == null) {
                throw new IllegalArgumentException(config.getSimpleName() + "." + property + " has no default");
            }
            return d.value();
        } catch (NoSuchMethodException e) {
            throw new IllegalArgumentException(config.getSimpleName() + " has no property " + property, e);
        }
    }
}
