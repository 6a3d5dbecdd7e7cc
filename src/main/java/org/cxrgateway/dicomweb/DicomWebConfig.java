package org.cxrgateway.dicomweb;

import io.quarkus.runtime.configuration.MemorySize;
import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;

/** STOW-RS in: POST /dicomweb/studies[/{StudyInstanceUID}] (role ingest, see application.properties). */
@ConfigMapping(prefix = "cxr.dicomweb")
public interface DicomWebConfig {

    Stow stow();

    interface Stow {

        /**
         * Largest request body, bytes: a longer one is answered 413, at once when its Content-Length says so,
         * else as soon as the limit is passed (what was stored before then stays stored). The body is streamed
         * to the spool and never held in memory, so this bounds disk, not heap. Default 2G.
         * quarkus.http.limits.max-body-size must be larger (application.properties sets it to 1T), or Quarkus
         * refuses first, without our metric.
         */
        @WithDefault("2G")
        MemorySize maxRequestSize();
    }
}
