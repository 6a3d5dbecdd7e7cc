package org.cxrgateway;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;

import java.nio.file.Path;
import java.util.Set;

/** Process-wide settings: which roles this process runs, and where its data lives. */
@ConfigMapping(prefix = "cxr")
public interface GatewayConfig {

    /**
     * Roles run by this process: {@code listener}, {@code worker}, {@code delivery}, or {@code all}.
     * Scale-out deployments run the same artifact once per role.
     */
    @WithDefault("all")
    Set<String> roles();

    /** Root of the spool, the embedded broker's log, delivery state and the outbox. */
    @WithDefault("data")
    Path dataDir();

    default boolean runs(Role role) {
        return roles().contains("all") || roles().contains(role.configName());
    }

    /** The offline {@code score} command runs no role, so no broker, listener or consumer starts. */
    default boolean runsAnyRole() {
        return java.util.Arrays.stream(Role.values()).anyMatch(this::runs);
    }

    enum Role {
        LISTENER, WORKER, DELIVERY;

        public String configName() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }
}
