package org.cxrgateway.testing;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.rest.annotation.IdParam;
import ca.uhn.fhir.rest.annotation.Read;
import ca.uhn.fhir.rest.annotation.RequiredParam;
import ca.uhn.fhir.rest.annotation.Search;
import ca.uhn.fhir.rest.annotation.Transaction;
import ca.uhn.fhir.rest.annotation.TransactionParam;
import ca.uhn.fhir.rest.param.ReferenceParam;
import ca.uhn.fhir.rest.param.TokenParam;
import ca.uhn.fhir.rest.server.IResourceProvider;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.exceptions.InternalErrorException;
import ca.uhn.fhir.rest.server.exceptions.InvalidRequestException;
import ca.uhn.fhir.rest.server.exceptions.ResourceNotFoundException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.Bundle;
import org.hl7.fhir.r4.model.Device;
import org.hl7.fhir.r4.model.DiagnosticReport;
import org.hl7.fhir.r4.model.IdType;
import org.hl7.fhir.r4.model.Identifier;
import org.hl7.fhir.r4.model.ImagingStudy;
import org.hl7.fhir.r4.model.Media;
import org.hl7.fhir.r4.model.Observation;
import org.hl7.fhir.r4.model.Patient;
import org.hl7.fhir.r4.model.Reference;
import org.hl7.fhir.r4.model.Resource;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;

/**
 * A real HAPI FHIR RestfulServer on Jetty (loopback, ephemeral port) whose transaction operation honours
 * conditional create (ifNoneExist on identifier) and conditional update (PUT Type?identifier=...: created at
 * version 1, or updated in place with meta.versionId + 1 when the content changed, as HAPI's JPA server does,
 * which skips an update that changes nothing), resolves the Bundle's urn:uuid references to the ids it
 * assigned (as a FHIR server must, R4 3.1.0.11.2), keeps what it created, and can be told to fail.
 * <p>
 * HAPI's plain server has no storage and so no searches of its own: it answers the reads and searches
 * a user makes to find our report, over what it stores (each a search parameter of R4 unless noted):
 * {@code DiagnosticReport?identifier=}, {@code ?subject=Patient/id} and the chained
 * {@code ?subject.identifier=system|value}; {@code Patient?identifier=}; {@code Observation?derived-from=}
 * and {@code ?identifier=}; {@code Media?identifier=} and {@code Media?part-of=} (not in R4, whose Media has
 * no search by study: the one parameter our resources need added, as a server's custom SearchParameter would).
 */
public final class FhirTestServer implements AutoCloseable, FhirPeer {

    private static final ObjectMapper JSON = new ObjectMapper();
    private final Server jetty;
    private final int port;
    private final HttpClient http = HttpClient.newHttpClient();
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
        servlet.registerProviders(new PatientProvider(), new ReportProvider(), new ObservationProvider(), new MediaProvider(),
                new Reads<>(ImagingStudy.class), new Reads<>(Device.class));
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

    @Override
    public boolean chainsSearches() {
        return true;
    }

    /** A search over HTTP, as a user's client makes it, e.g. search("DiagnosticReport", "identifier", "sys|val"): the searchset. */
    @Override
    public JsonNode search(String type, String param, String value) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(baseUrl() + "/" + type + "?" + param + "="
                + URLEncoder.encode(value, StandardCharsets.UTF_8))).GET().build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200) {
            throw new IOException("search " + type + "?" + param + " answered " + r.statusCode() + ": " + r.body());
        }
        return JSON.readTree(r.body());
    }

    /** Reads a reference like "Patient/5" over HTTP; null if the server does not have it. */
    @Override
    public JsonNode read(String reference) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(baseUrl() + "/" + reference)).GET().build(),
                HttpResponse.BodyHandlers.ofString());
        return r.statusCode() == 200 ? JSON.readTree(r.body()) : null;
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
                // first every entry's server id (found or new), then each resource written with its references
                // resolved (so that an unchanged update compares equal to what is stored)
                Map<String, String> resolved = new HashMap<>();
                List<String> keys = new ArrayList<>();
                for (Bundle.BundleEntryComponent e : in.getEntry()) {
                    String type = e.getResource().fhirType();
                    String key = type + "|" + identifierOf(e);
                    keys.add(key);
                    Resource existing = stored.get(key);
                    resolved.put(e.getFullUrl(), type + "/" + (existing != null
                            ? existing.getIdElement().getIdPart() : Long.toString(ids.incrementAndGet())));
                }
                for (int i = 0; i < in.getEntry().size(); i++) {
                    Bundle.BundleEntryComponent e = in.getEntry().get(i);
                    Resource r = e.getResource().copy();
                    for (Reference ref : ctx.newTerser().getAllPopulatedChildElementsOfType(r, Reference.class)) {
                        String target = resolved.get(ref.getReference());
                        if (target != null) {
                            ref.setReference(target);
                        }
                    }
                    r.setId(resolved.get(e.getFullUrl()));
                    boolean update = e.getRequest().getMethod() == Bundle.HTTPVerb.PUT;
                    out.addEntry().setResponse(write(keys.get(i), r, update));
                }
            }
            return out;
        }

        /** The identifier (system|value) a conditional create's ifNoneExist or a conditional update's URL names. */
        private String identifierOf(Bundle.BundleEntryComponent e) {
            if (e.getRequest().getMethod() == Bundle.HTTPVerb.PUT) {
                String url = e.getRequest().getUrl();
                int q = url.indexOf("?identifier=");
                if (q < 0) {
                    throw new InvalidRequestException("a PUT entry must be a conditional update on identifier: " + url);
                }
                if (!url.substring(0, q).equals(e.getResource().fhirType())) {
                    throw new InvalidRequestException("PUT " + url + " carries a " + e.getResource().fhirType());
                }
                return url.substring(q + "?identifier=".length());
            }
            String cond = e.getRequest().getIfNoneExist();
            if (cond == null || !cond.startsWith("identifier=")) {
                throw new InvalidRequestException("every entry must be a conditional create or update on identifier");
            }
            return cond.substring("identifier=".length());
        }

        /**
         * Stores r (its id already assigned): a new resource at version 1; an existing one is kept by a
         * conditional create and replaced by a conditional update when the content changed (version + 1).
         */
        private Bundle.BundleEntryResponseComponent write(String key, Resource r, boolean update) {
            String type = r.fhirType();
            String id = r.getIdElement().getIdPart();
            Resource existing = stored.get(key);
            if (existing == null) {
                r.getMeta().setVersionId("1");
                stored.put(key, r);
                creates.incrementAndGet();
                return new Bundle.BundleEntryResponseComponent().setStatus("201 Created")
                        .setLocation(type + "/" + id + (update ? "/_history/1" : ""));
            }
            if (!update) {
                return new Bundle.BundleEntryResponseComponent().setStatus("200 OK").setLocation(type + "/" + id);
            }
            int version = Integer.parseInt(existing.getMeta().getVersionId());
            if (!sameContent(existing, r)) {
                version++;
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

    /** Read by id for one resource type, over what the transactions stored. */
    public class Reads<T extends Resource> implements IResourceProvider {
        private final Class<T> type;

        Reads(Class<T> type) {
            this.type = type;
        }

        @Override
        public Class<T> getResourceType() {
            return type;
        }

        @Read
        public T read(@IdParam IdType id) {
            return stored(r -> r.getIdElement().getIdPart().equals(id.getIdPart())).stream().findFirst()
                    .orElseThrow(() -> new ResourceNotFoundException(id));
        }

        List<T> stored(Predicate<T> match) {
            List<T> out = new ArrayList<>();
            for (Resource r : stored.values()) {
                if (type.isInstance(r) && match.test(type.cast(r))) {
                    out.add(type.cast(r));
                }
            }
            out.sort((a, b) -> Integer.compare(Integer.parseInt(a.getIdElement().getIdPart()),
                    Integer.parseInt(b.getIdElement().getIdPart())));
            return out;
        }
    }

    public final class PatientProvider extends Reads<Patient> {
        PatientProvider() {
            super(Patient.class);
        }

        @Search
        public List<Patient> byIdentifier(@RequiredParam(name = Patient.SP_IDENTIFIER) TokenParam id) {
            return stored(p -> matches(p.getIdentifier(), id));
        }
    }

    public final class ReportProvider extends Reads<DiagnosticReport> {
        ReportProvider() {
            super(DiagnosticReport.class);
        }

        @Search
        public List<DiagnosticReport> byIdentifier(@RequiredParam(name = DiagnosticReport.SP_IDENTIFIER) TokenParam id) {
            return stored(r -> matches(r.getIdentifier(), id));
        }

        /** subject=Patient/id, or chained: subject.identifier=system|value (the Patient found by its identifier). */
        @Search
        public List<DiagnosticReport> bySubject(@RequiredParam(name = DiagnosticReport.SP_SUBJECT,
                chainWhitelist = {"", Patient.SP_IDENTIFIER}) ReferenceParam subject) {
            if (Patient.SP_IDENTIFIER.equals(subject.getChain())) {
                TokenParam id = new TokenParam();
                id.setValueAsQueryToken(FhirContext.forR4Cached(), null, null, subject.getValue());
                List<String> patients = new PatientProvider().byIdentifier(id).stream()
                        .map(p -> "Patient/" + p.getIdElement().getIdPart()).toList();
                return stored(r -> patients.contains(r.getSubject().getReference()));
            }
            return stored(r -> refersTo(r.getSubject(), subject, "Patient"));
        }
    }

    public final class ObservationProvider extends Reads<Observation> {
        ObservationProvider() {
            super(Observation.class);
        }

        @Search
        public List<Observation> byIdentifier(@RequiredParam(name = Observation.SP_IDENTIFIER) TokenParam id) {
            return stored(o -> matches(o.getIdentifier(), id));
        }

        @Search
        public List<Observation> byDerivedFrom(@RequiredParam(name = Observation.SP_DERIVED_FROM) ReferenceParam from) {
            return stored(o -> o.getDerivedFrom().stream().anyMatch(ref -> refersTo(ref, from, null)));
        }
    }

    public final class MediaProvider extends Reads<Media> {
        MediaProvider() {
            super(Media.class);
        }

        @Search
        public List<Media> byIdentifier(@RequiredParam(name = Media.SP_IDENTIFIER) TokenParam id) {
            return stored(m -> matches(m.getIdentifier(), id));
        }

        /** Not an R4 search parameter: Media.partOf, so that a study's heatmaps can be found from it. */
        @Search
        public List<Media> byPartOf(@RequiredParam(name = "part-of") ReferenceParam of) {
            return stored(m -> m.getPartOf().stream().anyMatch(ref -> refersTo(ref, of, null)));
        }
    }

    /** token search on identifier: system|value, |value (no system) or value (any system). */
    static boolean matches(List<Identifier> ids, TokenParam t) {
        return ids.stream().anyMatch(i -> t.getValue().equals(i.getValue())
                && (t.getSystem() == null || t.getSystem().equals(i.getSystem())));
    }

    /** reference search: Type/id, or id with the type the parameter implies. */
    static boolean refersTo(Reference ref, ReferenceParam p, String impliedType) {
        String type = p.getResourceType() != null ? p.getResourceType() : impliedType;
        String wanted = type == null ? null : type + "/" + p.getIdPart();
        return ref.getReference() != null && (wanted != null ? ref.getReference().equals(wanted)
                : ref.getReference().endsWith("/" + p.getIdPart()));
    }

    @Override
    public void close() throws Exception {
        jetty.stop();
    }
}
