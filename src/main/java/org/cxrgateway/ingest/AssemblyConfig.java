package org.cxrgateway.ingest;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.time.Duration;
import org.cxrgateway.schema.v2.PixelEncoding;

/** Study assembly and the working images put into jobs. */
@ConfigMapping(prefix = "cxr.assembly")
public interface AssemblyConfig {

    /** A study is ready when its associations ended and nothing arrived for this long. Default 2s. */
    @WithDefault("2s")
    Duration quietPeriod();

    /** Long side of working images in pixels; the aspect ratio is kept; never upscaled. Default 1024. */
    @WithDefault("1024")
    int workingLongSide();

    /** Bits per working-image pixel: 8 or 16. Default 8. */
    @WithDefault("8")
    int bitsPerPixel();

    /** Encoding of working-image pixels in the job: RAW or DEFLATE. Default DEFLATE. */
    @WithDefault("DEFLATE")
    PixelEncoding pixelEncoding();

    /**
     * Upper bound of one working image's payload; the image is shrunk until it fits. With one image per message
     * this bounds every job and result message; 800000 leaves the rest of a 1 MiB message to the findings and
     * their guided maps. Default 800000.
     */
    @WithDefault("800000")
    int maxPayloadBytes();

    /** Delay before retrying a job that could not be published. Default 5s. */
    @WithDefault("5s")
    Duration publishRetryDelay();

    /**
     * Failed attempts to assemble and publish a study before it is quarantined (its images are then not
     * decoded again until an operator retries it). A job the broker can never take (too large) is
     * quarantined at the first attempt; Kafka being unreachable counts no attempt. Default 5.
     */
    @WithDefault("5")
    int maxPublishAttempts();
}
