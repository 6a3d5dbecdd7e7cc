package org.cxrgateway.dicom;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

/** The DICOM listener (C-ECHO / C-STORE SCP). */
@ConfigMapping(prefix = "cxr.listener")
public interface ListenerConfig {

    /** Our (called) AE title; associations addressed to another AE title are rejected. Default CXRGATEWAY. */
    @WithDefault("CXRGATEWAY")
    String aeTitle();

    /** TCP port. 0 binds an ephemeral port (tests). Default 11112. */
    @WithDefault("11112")
    int port();

    /** Address to bind. Default 0.0.0.0 (all interfaces). */
    @WithDefault("0.0.0.0")
    String bindAddress();

    /**
     * Calling AE titles allowed to associate, each "AE" or "AE@host" (host name or IP literal).
     * Empty / unset: any calling AE is accepted. Default: unset.
     */
    Optional<List<String>> allowedCallingAes();

    /** Concurrent associations; further ones are rejected (transient, local limit exceeded). Default 16. */
    @WithDefault("16")
    int maxAssociations();

    /** Socket read timeout: an idle peer is dropped after it. Default 60s. */
    @WithDefault("60s")
    Duration socketTimeout();

    /** TCP_NODELAY on accepted sockets (DIMSE is request/response: Nagle only adds latency). Default true. */
    @WithDefault("true")
    boolean tcpNoDelay();

    /** Maximum PDU length we advertise (bytes). Larger PDUs mean fewer reads per instance. Default 131072. */
    @WithDefault("131072")
    int maxPduLength();
}
