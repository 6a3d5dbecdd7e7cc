package org.cxrgateway.dicom;

import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.io.IOException;

/** The DICOM listener's lifecycle as a bean. Started by the ingest service when the listener role is active. */
@ApplicationScoped
public class DicomListener {

    @Inject
    ListenerConfig config;

    private StoreScp scp;

    public synchronized void start(InstanceStore store, ScpObserver observer) throws IOException {
        if (scp != null) {
            return;
        }
        StoreScp s = new StoreScp(StoreScp.Options.from(config), store, observer);
        s.start();
        scp = s;
    }

    public synchronized void stop() {
        if (scp != null) {
            scp.close();
            scp = null;
        }
    }

    public synchronized boolean isStarted() {
        return scp != null;
    }

    public synchronized boolean isBound() {
        return scp != null && scp.isBound();
    }

    /** The bound port, or -1 when not started. */
    public synchronized int port() {
        return scp == null ? -1 : scp.port();
    }

    public String aeTitle() {
        return config.aeTitle();
    }
}
