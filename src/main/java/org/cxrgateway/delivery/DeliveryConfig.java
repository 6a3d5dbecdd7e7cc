package org.cxrgateway.delivery;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import io.smallrye.config.WithUnnamedKey;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/** Where reports go and how hard we try. */
@ConfigMapping(prefix = "cxr.delivery")
public interface DeliveryConfig {

    /** PACS destinations by name: {@code cxr.delivery.pacs.main.host=pacs.example}. None configured: none used. */
    Map<String, Pacs> pacs();

    /**
     * DICOMweb (STOW-RS) destinations by name: {@code cxr.delivery.dicomweb.archive.url=https://vna/dicom-web}.
     * None configured: none used.
     */
    Map<String, DicomWeb> dicomweb();

    /**
     * FHIR servers, each its own destination with its own write mode: the unnamed one
     * ({@code cxr.delivery.fhir.base-url=...}, destination {@code fhir}) and any named ones
     * ({@code cxr.delivery.fhir.registry.base-url=...}, destination {@code fhir-registry}), e.g. the EHR's
     * server and a research registry. One without a base URL is not used.
     */
    @WithUnnamedKey(FhirDestination.UNNAMED)
    Map<String, Fhir> fhir();

    Retry retry();

    /** Outbox used when no PACS and no FHIR server is configured; default {@code <cxr.data-dir>/outbox}. */
    Optional<Path> outboxDir();

    /** Ledger, pending hand-off and dead letters; default {@code <cxr.data-dir>/delivery}. */
    Optional<Path> stateDir();

    /**
     * How long delivery keeps what it recorded of a settled study after its last change: the study's history under
     * {@code <state>/studies} (what each result superseded, where it was delivered) and the destinations'
     * acknowledgement markers under {@code <state>/ledger}. After that the study's results can no longer be retracted
     * (the API answers 404 for it), a later result of the study supersedes nothing, and an old result replayed goes out
     * again under its same UIDs. A study with a destination still owing an outcome, or a retraction not yet
     * acknowledged everywhere, is kept however old. Checked at start and every hour; 0 keeps everything.
     */
    @WithDefault("90d")
    Duration retention();

    /** Kafka consumer group of the delivery role. */
    @WithDefault("cxr-delivery")
    String consumerGroup();

    interface Pacs {
        /** Host name or address of the PACS. */
        String host();

        /** DICOM port of the PACS. */
        @WithDefault("104")
        int port();

        /** Called AE title (the PACS). */
        @WithDefault("PACS")
        String calledAe();

        /** Our AE title; default the listener's {@code cxr.listener.ae-title}. */
        Optional<String> callingAe();

        /** DICOM TLS to this PACS. */
        PacsTls tls();
    }

    /**
     * The stores of one TLS client, shared by PACS TLS and DICOMweb (https) destinations. Unset trust store:
     * the JDK's default CA certificates; unset key store: no client certificate presented.
     */
    interface Stores {
        /** CAs the peer's certificate must chain to. */
        Optional<Path> trustStore();

        /** Trust store password. Never logged. */
        Optional<String> trustStorePassword();

        /** Trust store type. Default PKCS12. */
        @WithDefault("PKCS12")
        String trustStoreType();

        /** Our certificate and key, for a peer that requires client certificates. */
        Optional<Path> keyStore();

        /** Key store (and key) password. Never logged. */
        Optional<String> keyStorePassword();

        /** Key store type. Default PKCS12. */
        @WithDefault("PKCS12")
        String keyStoreType();
    }

    /** DICOM TLS (PS3.15 Annex B, TLS 1.2+) to one PACS, from these stores only (no javax.net.ssl properties). */
    interface PacsTls extends Stores {
        /** Connect with TLS. Default false. */
        @WithDefault("false")
        boolean enabled();

        /** The PACS certificate must name {@code host} (subjectAltName DNS or IP). Default true. */
        @WithDefault("true")
        boolean verifyHostname();

        /** Protocols, TLSv1.2 and/or TLSv1.3 only. Default TLSv1.3,TLSv1.2. */
        @WithDefault("TLSv1.3,TLSv1.2")
        List<String> protocols();

        /** Cipher suites (JSSE names). Unset: the JDK's enabled suites without TLS_RSA_* (no forward secrecy). */
        Optional<List<String>> cipherSuites();
    }

    /** One DICOMweb origin server that receives the SR and SCs by STOW-RS. */
    interface DicomWeb extends Stores {
        /** The server's DICOMweb root; STOW-RS posts to {@code <url>/studies}. Required. */
        String url();

        /** Bearer token (preferred over basic auth when both are set). Never logged. */
        Optional<String> bearerToken();

        /** Basic auth user. */
        Optional<String> username();

        /** Basic auth password. Never logged. */
        Optional<String> password();

        /** Connect timeout, and the whole request's. Default 30s. */
        @WithDefault("30s")
        Duration timeout();
    }

    interface Fhir {
        /** FHIR R4 base URL; absent: no FHIR delivery. */
        Optional<String> baseUrl();

        /** Bearer token (preferred over basic auth when both are set). Never logged. */
        Optional<String> bearerToken();

        /** Basic auth user. */
        Optional<String> username();

        /** Basic auth password. Never logged. */
        Optional<String> password();

        /** Connect and request timeout. */
        @WithDefault("30s")
        Duration timeout();

        /**
         * transaction (one Bundle; HAPI FHIR), ordered (dependency order, small transactions; Medplum, cloud
         * FHIR stores that cap transactions) or auto (transaction until the server names a size or isolation
         * limit, then ordered). See {@link FhirWriteMode}.
         */
        @WithDefault("transaction")
        FhirWriteMode writeMode();

        /** Ordered mode: entries per transaction at most (Medplum allows 8 with conditional creates). */
        @WithDefault("8")
        int maxTransactionEntries();
    }

    interface Retry {
        /** Attempts per destination before the result is dead-lettered (1 = no retry). */
        @WithDefault("6")
        int maxAttempts();

        /** Delay before the first retry; doubles each attempt, with jitter. */
        @WithDefault("1s")
        Duration initialBackoff();

        /** Cap of the delay between attempts. */
        @WithDefault("60s")
        Duration maxBackoff();
    }
}
