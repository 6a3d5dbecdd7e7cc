package org.cxrgateway.dicom;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

/**
 * TLS for DICOM associations (PS3.15 Annex B, Basic / BCP 195 TLS Secure Transport Connection
 * Profiles), with an {@link SSLContext} built from the configured stores only. The JVM-wide
 * {@code javax.net.ssl.*} properties and {@code SSLContext.setDefault} are never used: the listener
 * and every PACS destination may each have their own identity and trust, and the FHIR and Kafka
 * clients in the same JVM must not be affected.
 *
 * <p>Cipher suites: when none are configured, the JDK's enabled suites are used minus the
 * {@code TLS_RSA_*} ones (static RSA key exchange, no forward secrecy), which BCP 195 (RFC 9325)
 * and therefore PS3.15's BCP 195 profiles exclude; dcmtk's default profile refuses them too.
 */
public final class DicomTls {

    /** Whether the listener asks the calling node for a certificate. */
    public enum ClientAuth { NONE, WANT, NEED }

    /**
     * One side's TLS settings.
     *
     * @param keyStore          our certificate and private key; required on the listener, optional on the
     *                          SCU (only for PACS that require client certificates)
     * @param trustStore        CAs we accept the peer's certificate from; null: on the SCU the JDK's
     *                          default CAs, on the listener no client certificate can be verified
     * @param clientAuth        listener only
     * @param verifyHostname    SCU only: the PACS certificate must name the host we connect to (RFC 6125)
     * @param cipherSuites      empty: the JDK's enabled suites without TLS_RSA_*
     */
    public record Settings(Path keyStore, String keyStorePassword, String keyStoreType,
                           Path trustStore, String trustStorePassword, String trustStoreType,
                           ClientAuth clientAuth, List<String> protocols, List<String> cipherSuites,
                           boolean verifyHostname) {

        public Settings {
            keyStoreType = keyStoreType == null || keyStoreType.isBlank() ? "PKCS12" : keyStoreType;
            trustStoreType = trustStoreType == null || trustStoreType.isBlank() ? "PKCS12" : trustStoreType;
            clientAuth = clientAuth == null ? ClientAuth.NONE : clientAuth;
            protocols = protocols == null || protocols.isEmpty() ? List.of("TLSv1.3", "TLSv1.2") : List.copyOf(protocols);
            cipherSuites = cipherSuites == null ? List.of() : List.copyOf(cipherSuites);
        }

        /** Settings of a listener (server side). */
        public static Settings server(Path keyStore, String keyStorePassword, Path trustStore, String trustStorePassword,
                                      ClientAuth clientAuth) {
            return new Settings(keyStore, keyStorePassword, null, trustStore, trustStorePassword, null, clientAuth,
                    null, null, false);
        }

        /** Settings of an SCU (client side). */
        public static Settings client(Path trustStore, String trustStorePassword, Path keyStore, String keyStorePassword) {
            return new Settings(keyStore, keyStorePassword, null, trustStore, trustStorePassword, null, ClientAuth.NONE,
                    null, null, true);
        }

        @Override
        public String toString() {
            // never the passwords
            return "TLS " + protocols + (keyStore == null ? "" : " key store " + keyStore)
                    + (trustStore == null ? "" : " trust store " + trustStore) + " client auth " + clientAuth;
        }
    }

    private DicomTls() {
    }

    /** The SSLContext of these settings; fails with a message that names the store at fault. */
    public static SSLContext context(Settings s) throws IOException {
        try {
            KeyManagerFactory kmf = null;
            if (s.keyStore() != null) {
                KeyStore ks = load(s.keyStore(), s.keyStorePassword(), s.keyStoreType(), "key store");
                kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
                kmf.init(ks, chars(s.keyStorePassword()));
            }
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            // null: the JDK's CA certificates (cacerts), not the javax.net.ssl.trustStore property's
            tmf.init(s.trustStore() == null ? null
                    : load(s.trustStore(), s.trustStorePassword(), s.trustStoreType(), "trust store"));
            SSLContext ctx = SSLContext.getInstance("TLS");
            ctx.init(kmf == null ? null : kmf.getKeyManagers(), tmf.getTrustManagers(), null);
            return ctx;
        } catch (GeneralSecurityException e) {
            throw new IOException("cannot set up DICOM TLS: " + e.getMessage(), e);
        }
    }

    /** An unbound server socket for the listener. */
    static SSLServerSocket serverSocket(Settings s) throws IOException {
        if (s.keyStore() == null) {
            throw new IOException("DICOM TLS listener needs a key store (cxr.listener.tls.key-store)");
        }
        if (s.clientAuth() == ClientAuth.NEED && s.trustStore() == null) {
            throw new IOException("DICOM TLS client-auth=need needs a trust store (cxr.listener.tls.trust-store)");
        }
        SSLContext ctx = context(s);
        SSLServerSocket server = (SSLServerSocket) ctx.getServerSocketFactory().createServerSocket();
        SSLParameters p = ctx.getDefaultSSLParameters();
        p.setProtocols(protocols(s, ctx.getSupportedSSLParameters().getProtocols()));
        p.setCipherSuites(cipherSuites(s, p.getCipherSuites()));
        // without our own trust store, a requested client certificate would be checked against the public CAs
        ClientAuth auth = s.trustStore() == null ? ClientAuth.NONE : s.clientAuth();
        if (auth == ClientAuth.NEED) {
            p.setNeedClientAuth(true);
        } else if (auth == ClientAuth.WANT) {
            p.setWantClientAuth(true);
        }
        server.setSSLParameters(p);
        return server;
    }

    /** A connected, handshaken client socket to host:port. */
    static SSLSocket connect(Settings s, String host, int port, int connectTimeoutMillis, int soTimeoutMillis,
                             boolean tcpNoDelay) throws IOException {
        SSLContext ctx = context(s);
        Socket plain = new Socket();
        SSLSocket ssl = null;
        try {
            plain.setTcpNoDelay(tcpNoDelay);
            plain.setSoTimeout(soTimeoutMillis);
            plain.connect(new InetSocketAddress(host, port), connectTimeoutMillis);
            // layered over a connected socket with the host name: SNI and endpoint identification use it
            ssl = (SSLSocket) ctx.getSocketFactory().createSocket(plain, host, port, true);
            SSLParameters p = ssl.getSSLParameters();
            p.setProtocols(protocols(s, ctx.getSupportedSSLParameters().getProtocols()));
            p.setCipherSuites(cipherSuites(s, p.getCipherSuites()));
            if (s.verifyHostname()) {
                p.setEndpointIdentificationAlgorithm("HTTPS");
            }
            ssl.setSSLParameters(p);
            ssl.startHandshake();
            return ssl;
        } catch (IOException | RuntimeException e) {
            (ssl != null ? ssl : plain).close();
            throw e;
        }
    }

    private static String[] protocols(Settings s, String[] supported) throws IOException {
        List<String> ok = new ArrayList<>();
        List<String> sup = Arrays.asList(supported);
        for (String p : s.protocols()) {
            String t = p.trim();
            if (!t.startsWith("TLSv1.2") && !t.startsWith("TLSv1.3")) {
                // PS3.15 / BCP 195: TLS 1.2 or later only
                throw new IOException("DICOM TLS protocol " + t + " not allowed (TLSv1.2 or TLSv1.3 only)");
            }
            if (sup.contains(t)) {
                ok.add(t);
            }
        }
        if (ok.isEmpty()) {
            throw new IOException("none of the DICOM TLS protocols " + s.protocols() + " is supported by this JDK");
        }
        return ok.toArray(String[]::new);
    }

    private static String[] cipherSuites(Settings s, String[] enabled) throws IOException {
        if (!s.cipherSuites().isEmpty()) {
            return s.cipherSuites().stream().map(String::trim).toArray(String[]::new);
        }
        String[] fs = Arrays.stream(enabled).filter(c -> !c.startsWith("TLS_RSA_") && !c.startsWith("SSL_RSA_"))
                .toArray(String[]::new);
        if (fs.length == 0) {
            throw new IOException("no forward-secret cipher suite enabled in this JDK");
        }
        return fs;
    }

    private static KeyStore load(Path path, String password, String type, String what)
            throws IOException, GeneralSecurityException {
        if (!Files.isReadable(path)) {
            throw new IOException("DICOM TLS " + what + " " + path + " is not readable");
        }
        KeyStore ks = KeyStore.getInstance(type);
        try (InputStream in = Files.newInputStream(path)) {
            ks.load(in, chars(password));
        } catch (IOException e) {
            // a wrong password shows up as an IOException from KeyStore.load
            throw new IOException("cannot read DICOM TLS " + what + " " + path + ": " + e.getMessage(), e);
        }
        return ks;
    }

    private static char[] chars(String s) {
        return s == null ? new char[0] : s.toCharArray();
    }
}
