package org.cxrgateway.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A throw-away PKI made with the openssl CLI and the JDK's keytool: a CA, a server certificate for
 * 127.0.0.1 / localhost, a client certificate, and a client certificate from another (untrusted) CA.
 * Each identity is written as PEM key + certificate (for dcmtk) and as a PKCS12 key store (for us);
 * the CA as PEM and as a PKCS12 trust store.
 */
public final class TestPki {

    public static final String PASSWORD = "changeit";

    public final Path dir;
    public final Path caPem;
    public final Path trustStore;

    public TestPki(Path dir) throws IOException, InterruptedException {
        this.dir = dir;
        Files.createDirectories(dir);
        caPem = ca("ca", "CXR Test DICOM CA");
        leaf("server", "ca", "CXR Test PACS", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth");
        leaf("client", "ca", "CXR Test Modality", "extendedKeyUsage=clientAuth,serverAuth");
        ca("rogue-ca", "Someone Else's CA");
        leaf("rogue", "rogue-ca", "CXR Test Modality", "extendedKeyUsage=clientAuth");
        trustStore = dir.resolve("trust.p12");
        ok(keytool(), "-importcert", "-noprompt", "-alias", "ca", "-file", caPem.toString(), "-keystore",
                trustStore.toString(), "-storetype", "PKCS12", "-storepass", PASSWORD);
    }

    /** PEM private key of an identity (server, client, rogue). */
    public Path key(String name) {
        return dir.resolve(name + ".key");
    }

    /** PEM certificate of an identity. */
    public Path cert(String name) {
        return dir.resolve(name + ".pem");
    }

    /** PKCS12 key store (certificate chain + key) of an identity, password {@link #PASSWORD}. */
    public Path keyStore(String name) {
        return dir.resolve(name + ".p12");
    }

    private Path ca(String name, String cn) throws IOException, InterruptedException {
        ok("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=" + cn,
                "-keyout", key(name).toString(), "-out", cert(name).toString(),
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
        return cert(name);
    }

    private void leaf(String name, String ca, String cn, String extensions) throws IOException, InterruptedException {
        Path csr = dir.resolve(name + ".csr");
        Path ext = dir.resolve(name + ".ext");
        Files.writeString(ext, "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n" + extensions + "\n");
        ok("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn, "-keyout", key(name).toString(),
                "-out", csr.toString());
        ok("openssl", "x509", "-req", "-in", csr.toString(), "-CA", cert(ca).toString(), "-CAkey", key(ca).toString(),
                "-CAcreateserial", "-days", "2", "-extfile", ext.toString(), "-out", cert(name).toString());
        ok("openssl", "pkcs12", "-export", "-in", cert(name).toString(), "-inkey", key(name).toString(),
                "-certfile", cert(ca).toString(), "-name", name, "-out", keyStore(name).toString(),
                "-passout", "pass:" + PASSWORD);
    }

    private static String keytool() {
        return Path.of(System.getProperty("java.home"), "bin", "keytool").toString();
    }

    private static void ok(String... cmd) throws IOException, InterruptedException {
        Tools.Result r = Tools.run(cmd);
        if (r.exit() != 0) {
            throw new IOException(String.join(" ", cmd) + " failed (" + r.exit() + "):\n" + r.out());
        }
    }
}
