package org.cxrgateway.testing;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.rest.annotation.Transaction;
import ca.uhn.fhir.rest.annotation.TransactionParam;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.exceptions.InternalErrorException;
import ca.uhn.fhir.rest.server.exceptions.InvalidRequestException;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.hl7.fhir.r4.model.Bundle;
import org.hl7.fhir.r4.model.Resource;

import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A real HAPI FHIR RestfulServer on Jetty (loopback, ephemeral port) whose transaction operation honours
 * conditional create (ifNoneExist on identifier) and conditional update (PUT Type?identifier=...: created at
 * version 1, or updated in place with meta.versionId + 1 when the content changed, as HAPI's JPA server does,
 * which skips an update that changes nothing), keeps what it holds, and can be told to fail.
 */
public final class FhirTestServer implements AutoCloseable {

    private final Server jetty;
    private final int port;
    /** type|system|value of the identifier searched by ifNoneExist, to the stored resource. */
    public final Map<String, Resource> stored = new ConcurrentHashMap<>();
    public final List<String> receivedBundles = Collections.synchronizedList(new ArrayList<>());
    public final List<String> authorizations = Collections.synchronizedList(new ArrayList<>());
    public final AtomicInteger failNext = new AtomicInteger();
    public final AtomicInteger creates = new AtomicInteger();
    /** Conditional updates that changed a resource (a new version). */
    public final AtomicInteger updates = new AtomicInteger();
    private final AtomicInteger ids = new AtomicInteger();

    public FhirTestServer() throws Exception {
        FhirContext ctx = FhirContext.forR4Cached();
        RestfulServer servlet = new RestfulServer(ctx);
        servlet.registerProvider(new TxProvider(ctx));
        servlet.registerInterceptor(new Object() {
            @ca.uhn.fhir.interceptor.api.Hook(ca.uhn.fhir.interceptor.api.Pointcut.SERVER_INCOMING_REQUEST_PRE_HANDLED)
            public void pre(ca.uhn.fhir.rest.api.server.RequestDetails req) {
                String a = req.getHeader("Authorization");
                authorizations.add(a == null ? "" : a);
            }
        });
        jetty = new Server(new InetSocketAddress("127.0.0.1", 0));
        ServletContextHandler handler = new ServletContextHandler();
        handler.setContextPath("/");
        handler.addServlet(new ServletHolder(servlet), "/fhir/*");
        jetty.setHandler(handler);
        jetty.start();
        port = ((ServerConnector) jetty.getConnectors()[0]).getLocalPort();
    }

    public String baseUrl() {
        return "http://127.0.0.1:" + port + "/fhir";
    }

    public long count(String type) {
        return stored.keySet().stream().filter(k -> k.startsWith(type + "|")).count();
    }

    public final class TxProvider {
        private final FhirContext ctx;

        TxProvider(FhirContext ctx) {
            this.ctx = ctx;
        }

        @Transaction
        public Bundle transaction(@TransactionParam Bundle in) {
            receivedBundles.add(ctx.newJsonParser().encodeResourceToString(in));
            if (failNext.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
                throw new InternalErrorException("injected failure");
            }
            Bundle out = new Bundle().setType(Bundle.BundleType.TRANSACTIONRESPONSE);
            synchronized (stored) {
                for (Bundle.BundleEntryComponent e : in.getEntry()) {
                    if (e.getRequest().getMethod() == Bundle.HTTPVerb.PUT) {
                        out.addEntry().setResponse(update(e));
                        continue;
                    }
                    String cond = e.getRequest().getIfNoneExist();
                    if (cond == null || !cond.startsWith("identifier=")) {
                        throw new InvalidRequestException("every entry must be a conditional create on identifier");
                    }
                    String type = e.getResource().fhirType();
                    String key = type + "|" + cond.substring("identifier=".length());
                    Resource existing = stored.get(key);
                    if (existing != null) {
                        out.addEntry().getResponse().setStatus("200 OK").setLocation(type + "/" + existing.getIdElement().getIdPart());
                    } else {
                        Resource r = e.getResource().copy();
                        r.setId(type + "/" + ids.incrementAndGet());
                        r.getMeta().setVersionId("1");
                        stored.put(key, r);
                        creates.incrementAndGet();
                        out.addEntry().getResponse().setStatus("201 Created").setLocation(r.getId());
                    }
                }
            }
            return out;
        }

        private Bundle.BundleEntryResponseComponent update(Bundle.BundleEntryComponent e) {
            String url = e.getRequest().getUrl();
            int q = url.indexOf("?identifier=");
            if (q < 0) {
                throw new InvalidRequestException("a PUT entry must be a conditional update on identifier: " + url);
            }
            String type = url.substring(0, q);
            if (!type.equals(e.getResource().fhirType())) {
                throw new InvalidRequestException("PUT " + url + " carries a " + e.getResource().fhirType());
            }
            String key = type + "|" + url.substring(q + "?identifier=".length());
            Resource existing = stored.get(key);
            Resource r = e.getResource().copy();
            if (existing == null) {
                r.setId(type + "/" + ids.incrementAndGet());
                r.getMeta().setVersionId("1");
                stored.put(key, r);
                creates.incrementAndGet();
                return new Bundle.BundleEntryResponseComponent().setStatus("201 Created").setLocation(r.getId() + "/_history/1");
            }
            String id = existing.getIdElement().getIdPart();
            int version = Integer.parseInt(existing.getMeta().getVersionId());
            if (!sameContent(existing, r)) {
                version++;
                r.setId(type + "/" + id);
                r.getMeta().setVersionId(Integer.toString(version));
                stored.put(key, r);
                updates.incrementAndGet();
            }
            return new Bundle.BundleEntryResponseComponent().setStatus("200 OK")
                    .setLocation(type + "/" + id + "/_history/" + version);
        }

        private boolean sameContent(Resource a, Resource b) {
            Resource x = a.copy();
            Resource y = b.copy();
            x.setId((String) null);
            y.setId((String) null);
            x.setMeta(null);
            y.setMeta(null);
            return ctx.newJsonParser().encodeResourceToString(x).equals(ctx.newJsonParser().encodeResourceToString(y));
        }
    }

    @Override
    public void close() throws Exception {
        jetty.stop();
    }
}
