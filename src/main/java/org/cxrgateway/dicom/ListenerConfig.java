package org.cxrgateway.dicom;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.nio.file.Path;
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

    /**
     * ARTIM (PS3.8 9.1.5): a connection that has not sent a complete A-ASSOCIATE-RQ (TLS handshake
     * included) within this time is closed. Bounds slow and half-open connections. Default 10s.
     */
    @WithDefault("10s")
    Duration artimTimeout();

    /**
     * An established association that receives no complete PDU (and is sent none) for this long is
     * closed, however slowly the peer drips bytes. Default 60s (modalities that hold an association open
     * between studies reconnect; a C-STORE that is still sending completes a PDU far more often).
     */
    @WithDefault("60s")
    Duration idleTimeout();

    /**
     * Connections (associations and connections still negotiating) from one remote address; more are
     * closed at accept without being read, so that one peer cannot take every slot or thread. Default 8
     * (half of {@link #maxAssociations()}'s default).
     */
    @WithDefault("8")
    int maxAssociationsPerPeer();

    /** Socket read timeout: an idle peer is dropped after it. Default 60s. */
    @WithDefault("60s")
    Duration socketTimeout();

    /** TCP_NODELAY on accepted sockets (DIMSE is request/response: Nagle only adds latency). Default true. */
    @WithDefault("true")
    boolean tcpNoDelay();

    /** Maximum PDU length we advertise (bytes). Larger PDUs mean fewer reads per instance. Default 131072. */
    @WithDefault("131072")
    int maxPduLength();

    /** DICOM TLS on the listener port. */
    Tls tls();

    /**
     * DICOM TLS (PS3.15 Annex B, TLS 1.2+). When enabled the listener speaks TLS only, on the configured
     * {@link #port()}: PS3.15 registers 2762 for DICOM over TLS, but sites pick their own ports and a
     * plain and a TLS listener are never multiplexed on one port. No javax.net.ssl system property is used.
     */
    interface Tls {

        /** Listener speaks TLS instead of plain TCP. Default false. */
        @WithDefault("false")
        boolean enabled();

        /** Our certificate chain and private key (required when enabled). */
        Optional<Path> keyStore();

        /** Password of the key store and of its private key. Never logged. */
        Optional<String> keyStorePassword();

        /** Key store type. Default PKCS12. */
        @WithDefault("PKCS12")
        String keyStoreType();

        /**
         * CAs that sign the certificates of calling nodes. Unset: client certificates are not requested
         * (client-auth behaves as none, and need is a startup error).
         */
        Optional<Path> trustStore();

        /** Trust store password. Never logged. */
        Optional<String> trustStorePassword();

        /** Trust store type. Default PKCS12. */
        @WithDefault("PKCS12")
        String trustStoreType();

        /**
         * none | want | need. Default want: a presented certificate must chain to the trust store (an
         * untrusted one fails the handshake), but a node without one may still associate and is then
         * held to the calling-AE allow-list like a plain one. Many modalities and PACS can do TLS but
         * cannot be given a client certificate, and need would lock them out the day TLS is switched on;
         * set need once every sender has a certificate.
         */
        @WithDefault("want")
        DicomTls.ClientAuth clientAuth();

        /** Protocols, TLSv1.2 and/or TLSv1.3 only. Default TLSv1.3,TLSv1.2. */
        @WithDefault("TLSv1.3,TLSv1.2")
        List<String> protocols();

        /** Cipher suites (JSSE names). Unset: the JDK's enabled suites without TLS_RSA_* (no forward secrecy). */
        Optional<List<String>> cipherSuites();
    }
}
