package org.cxrgateway.ingest;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.time.Duration;

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

    /**
     * Encoding of working-image pixels in the job: RAW, DEFLATE (zlib), or AUTO: RAW when the raw pixels fit
     * max-payload-bytes, DEFLATE when they do not (see {@link WorkingImageDecoder.Encoding}). Default AUTO.
     */
    @WithDefault("AUTO")
    WorkingImageDecoder.Encoding pixelEncoding();

    /**
     * Upper bound of one working image's payload; the image is shrunk until it fits. With one image per message
     * this bounds every job and result message. 950000 keeps a 1024x853 working image (3000x2500 source) at its
     * full working size even uncompressed, so preprocessing sees what upstream sees (800000 shrank it once more
     * and moved p by up to 3.3e-2), and leaves ~94 kB of a 1 MiB message for the part's header (at most 1000
     * skipped instances listed, ~80 kB) and, in a result, the findings; guided maps that no longer fit beside an
     * incompressible working image at the cap are left out by MessageBudget. Default 950000.
     */
    @WithDefault("950000")
    int maxPayloadBytes();

    /**
     * Most images one study's job holds: the first eligible instances in SOP Instance UID order; any further
     * eligible instance is skipped as TOO_MANY_IMAGES, and counted and listed as skipped instances are. A job holds
     * its working images (each up to max-payload-bytes) in the listener's memory until it is published, so this
     * bounds that memory whatever a sender puts in one study; a chest radiograph study has a few images. Default 200.
     */
    @WithDefault("200")
    int maxImages();

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
