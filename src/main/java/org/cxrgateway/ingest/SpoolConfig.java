package org.cxrgateway.ingest;

import io.quarkus.runtime.configuration.MemorySize;
import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;

/** The durable spool of received instances. */
@ConfigMapping(prefix = "cxr.spool")
public interface SpoolConfig {

    /** Spool directory. Default ${cxr.data-dir}/spool. */
    @WithDefault("${cxr.data-dir}/spool")
    String path();

    /**
     * Free-space watermark: below it, C-STORE is answered Out of Resources (A700) instead of
     * filling the disk, and readiness goes down. Default 512M.
     */
    @WithDefault("512M")
    MemorySize minFreeSpace();

    /**
     * How long a settled study (published, or without any eligible image) stays in the spool after its
     * last file was written, for re-scoring and audits. The spool is swept every 10 minutes. Default 24h.
     */
    @WithDefault("24h")
    java.time.Duration retention();

    /**
     * While an instance is being received, flush its temporary file to disk in the background every so many
     * bytes, so that disk writes overlap the reception and the fsync before Success has less left to write.
     * Durability is the same either way (the whole file is fsynced before it is published); 0 turns it off.
     * Default 0 (off): no gain was shown. Interleaved runs, one association to disk, 2-core Zen 4 VM, free memory
     * prefaulted before each timed window (2026-12-07): off 231.7 / 228.3 / 172.6 img/s, every 512K 215.5 / 219.7 /
     * 194.0, every 2M 182.7 / 208.7 / 157.5 (each early flush is an fdatasync of a growing file: a journal commit of
     * its own). A failed early flush also fails its instance.
     */
    @WithDefault("0")
    MemorySize earlyFlush();

    /**
     * Write incoming instances (C-STORE, STOW-RS parts) with O_DIRECT, in block-aligned 1 MiB requests that bypass
     * the page cache, so each MiB goes to the disk as it arrives and the fsync before Success has only metadata left;
     * where the spool's file system refuses O_DIRECT (tried once at start), files are written through the page cache
     * (logged once).
     * Durability is the same either way; early flushes apply only to files written through the page cache. Default
     * true: interleaved C-STORE runs, one association to disk, 2-core Zen 4 VM, memory prefaulted (2026-12-07): 254 /
     * 277 / 213 img/s direct against 211 / 234 / 167 through the page cache (4 associations 327 / 381 / 309 against
     * 323 / 323 / 358, and STOW-RS: no difference shown).
     */
    @WithDefault("true")
    boolean directIo();
}
