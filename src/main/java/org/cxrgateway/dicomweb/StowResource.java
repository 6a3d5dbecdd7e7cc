package org.cxrgateway.dicomweb;

import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.security.identity.SecurityIdentity;
import io.vertx.core.http.HttpServerRequest;
import jakarta.inject.Inject;
import jakarta.ws.rs.HeaderParam;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.core.Context;
import jakarta.ws.rs.core.Response;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;
import org.cxrgateway.dicom.AssociationInfo;
import org.cxrgateway.dicom.DicomUids;
import org.cxrgateway.dicom.InstanceStore;
import org.cxrgateway.dicom.StoreOutcome;
import org.cxrgateway.dicom.StowResponse;
import org.cxrgateway.dicom.StowService;
import org.cxrgateway.ingest.IngestService;
import org.cxrgateway.ingest.Spool;
import org.jboss.logging.Logger;

/**
 * STOW-RS Store Instances (PS3.18 10.5): {@code POST /dicomweb/studies} and {@code /dicomweb/studies/{study}},
 * {@code multipart/related; type="application/dicom"}. The body is read as it arrives (a blocking endpoint's
 * InputStream: Quarkus REST hands over the network chunks and holds none beyond its input buffer), each part
 * streamed to a spool temporary file and then checked and committed by {@link StowService}, the C-STORE path's
 * twin, on a small commit pool while the next part is read; the response is written only after every stored
 * part is durable. One request is one burst for study
 * assembly: when it ends, the quiet period of every study it touched starts, as after an association release.
 *
 * <p>Statuses: 200 all stored (duplicates included), 202 some stored and some failed (Warning header), 409 none
 * stored, each with the Referenced / Failed SOP Sequence (DICOM JSON, or XML when Accept asks for
 * application/dicom+xml); 400 malformed multipart or target UID, 413 body over
 * {@code cxr.dicomweb.stow.max-request-size}, 415 not multipart/related of application/dicom, 503 when this
 * process does not run the listener role. Parts already stored when a 400 or 413 ends a request stay stored
 * (and are assembled): a client that sends it again gets them acknowledged as duplicates. Every request is
 * counted in {@code cxr_dicomweb_stow_requests_total{status,reason}}; a refused request is logged in one line,
 * a refused instance too ({@link StowService}), and instances in the ingest metrics like C-STORE's.
 */
@Path("/dicomweb/studies")
public class StowResource {

    private static final Logger LOG = Logger.getLogger(StowResource.class);
    private static final String APPLICATION_DICOM = "application/dicom";
    private static final String DICOM_JSON = "application/dicom+json";
    private static final String DICOM_XML = "application/dicom+xml";
    /**
     * Checks and commits of parts, across requests: a few threads, so that fsyncs overlap each other and the
     * reading of the next part; what waits for them is a temporary file on disk, not memory.
     */
    private static final ExecutorService COMMITS = Executors.newFixedThreadPool(4, r -> {
        Thread t = new Thread(r, "stow-commit");
        t.setDaemon(true);
        return t;
    });
    /** Negative, so a request never shares an id with an association (DimseDispatcher counts up from 1). */
    private static final AtomicLong REQUESTS = new AtomicLong();

    @Inject
    IngestService ingest;

    @Inject
    DicomWebConfig config;

    @Inject
    MeterRegistry registry;

    @Inject
    SecurityIdentity identity;

    @POST
    public Response store(@HeaderParam("Content-Type") String contentType,
                          @HeaderParam("Content-Length") String contentLength,
                          @HeaderParam("Accept") String accept,
                          @Context HttpServerRequest request, InputStream body) {
        return handle(null, contentType, contentLength, accept, request, body);
    }

    @POST
    @Path("{study}")
    public Response storeToStudy(@PathParam("study") String study,
                                 @HeaderParam("Content-Type") String contentType,
                                 @HeaderParam("Content-Length") String contentLength,
                                 @HeaderParam("Accept") String accept,
                                 @Context HttpServerRequest request, InputStream body) {
        if (!DicomUids.isValidUid(study)) {
            return refuse(400, "bad-target", "the target Study Instance UID is not a valid UID", request);
        }
        return handle(study, contentType, contentLength, accept, request, body);
    }

    private Response handle(String study, String contentType, String contentLength, String accept,
                            HttpServerRequest request, InputStream body) {
        Spool spool = ingest.spool();
        if (spool == null) {
            return refuse(503, "not-ready", "this process does not run the listener role", request);
        }
        MediaTypes media = MediaTypes.parse(contentType);
        if (media == null || !media.type().equals("multipart/related")) {
            return refuse(415, "unsupported-media-type", "Content-Type must be multipart/related; type=\""
                    + APPLICATION_DICOM + "\"", request);
        }
        String type = media.parameter("type");
        if (type != null && !type.trim().toLowerCase(Locale.ROOT).equals(APPLICATION_DICOM)) {
            // application/dicom+json / +xml with bulk data (PS3.18 10.5.1.2.2-3) is not supported
            return refuse(415, "unsupported-media-type", "multipart/related type must be " + APPLICATION_DICOM, request);
        }
        long max = config.stow().maxRequestSize().asLongValue();
        if (contentLength != null) {
            try {
                if (Long.parseLong(contentLength.trim()) > max) {
                    return refuse(413, "too-large", "body longer than " + max + " bytes", request);
                }
            } catch (NumberFormatException e) {
                return refuse(400, "malformed", "Content-Length is not a number", request);
            }
        }
        MultipartRelatedReader reader;
        try {
            reader = new MultipartRelatedReader(body, media.parameter("boundary"), max);
        } catch (MultipartRelatedReader.MalformedException e) {
            return refuse(400, "malformed", e.getMessage(), request);
        }
        StowService service = new StowService(spool, ingest.metrics());
        AssociationInfo burst = new AssociationInfo(-REQUESTS.incrementAndGet(), principal(), "DICOMWEB",
                remote(request));
        List<CompletableFuture<StowService.Result>> pending = new ArrayList<>();
        List<StowService.Result> results;
        try {
            int part = 0;
            Map<String, String> headers;
            while ((headers = reader.nextPart()) != null) {
                part++;
                pending.add(storePart(reader, headers, service, study, burst, part));
            }
        } catch (MultipartRelatedReader.TooLargeException e) {
            return refuse(413, "too-large", e.getMessage() + " (" + stored(settle(pending)) + " parts stored before)", request);
        } catch (MultipartRelatedReader.MalformedException e) {
            return refuse(400, "malformed", e.getMessage() + " (" + stored(settle(pending)) + " parts stored before)", request);
        } catch (IOException e) {
            // the client went away or the connection broke: no one reads an answer, but it is counted and logged
            settle(pending);
            return refuse(400, "incomplete", "body not received: " + e.getMessage(), request);
        } finally {
            // every commit has ended (settle) before the burst ends and before any answer is written
            settle(pending);
            spool.associationEnded(burst);
        }
        results = settle(pending);
        if (results.isEmpty()) {
            return refuse(400, "malformed", "no parts", request);
        }
        int status = StowResponse.httpStatus(results);
        registry.counter("cxr.dicomweb.stow.requests", "status", Integer.toString(status),
                "reason", status == 200 ? "stored" : status == 202 ? "partly-stored" : "none-stored").increment();
        boolean xml = prefersXml(accept);
        Response.ResponseBuilder r = Response.status(status)
                .type(xml ? DICOM_XML : DICOM_JSON)
                .entity(xml ? StowResponse.xml(results) : StowResponse.json(results));
        if (status == 202) {
            r.header("Warning", "299 cxr-gateway: \"" + (results.size() - stored(results)) + " of " + results.size()
                    + " instances failed; see the Failed SOP Sequence\"");
        }
        return r.build();
    }

    /** Waits for every part's commit; each ends in a Result (StowService never throws for a part). */
    private static List<StowService.Result> settle(List<CompletableFuture<StowService.Result>> pending) {
        List<StowService.Result> out = new ArrayList<>(pending.size());
        for (CompletableFuture<StowService.Result> f : pending) {
            out.add(f.join());
        }
        return out;
    }

    /**
     * Streams one part to a spool temporary file on this (the request's) thread, and hands its check and commit
     * (parse, fsync, rename, directory fsync) to the commit pool, so that the next part is read from the network
     * while this one is made durable. Parts refused before they reach the disk end here.
     */
    private CompletableFuture<StowService.Result> storePart(MultipartRelatedReader reader, Map<String, String> headers,
                                         StowService service, String study, AssociationInfo burst, int part)
            throws IOException {
        MediaTypes partType = MediaTypes.parse(headers.get("content-type"));
        if (partType != null && !partType.type().equals(APPLICATION_DICOM)) {
            reader.copyBody(OutputStream.nullOutputStream());
            return CompletableFuture.completedFuture(
                    service.refused(StoreOutcome.NOT_APPLICATION_DICOM, "Content-Type " + partType.type(), part));
        }
        java.nio.file.Path temporary;
        try {
            temporary = service.newTemporaryFile();
        } catch (IOException e) {
            reader.copyBody(OutputStream.nullOutputStream());
            return CompletableFuture.completedFuture(service.refused(e instanceof InstanceStore.InsufficientStorageException
                    ? StoreOutcome.OUT_OF_RESOURCES : StoreOutcome.IO_ERROR, e.getMessage(), part));
        }
        WriteGuard sink;
        try {
            sink = new WriteGuard(new BufferedOutputStream(service.partStream(temporary), 64 * 1024));
        } catch (IOException e) {
            Files.deleteIfExists(temporary);
            reader.copyBody(OutputStream.nullOutputStream());
            return CompletableFuture.completedFuture(service.refused(StoreOutcome.IO_ERROR, e.toString(), part));
        }
        long bytes;
        try {
            bytes = reader.copyBody(sink);
            sink.close();
        } catch (IOException e) {
            sink.close();
            Files.deleteIfExists(temporary);
            throw e;
        }
        if (sink.failure != null) {
            Files.deleteIfExists(temporary);
            String m = String.valueOf(sink.failure.getMessage()).toLowerCase(Locale.ROOT);
            return CompletableFuture.completedFuture(service.refused(
                    m.contains("no space left") ? StoreOutcome.OUT_OF_RESOURCES : StoreOutcome.IO_ERROR,
                    sink.failure.toString(), part));
        }
        long size = bytes;
        return CompletableFuture.supplyAsync(() -> service.store(temporary, size, study, burst, part), COMMITS);
    }

    /**
     * Keeps the first write failure instead of throwing it, so that a disk error ends the part, not the request:
     * the rest of the part is read and dropped, as C-STORE drops the rest of a data set it cannot write.
     */
    private static final class WriteGuard extends OutputStream {
        private final OutputStream out;
        IOException failure;

        WriteGuard(OutputStream out) {
            this.out = out;
        }

        @Override
        public void write(int b) {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) {
            if (failure == null) {
                try {
                    out.write(b, off, len);
                } catch (IOException e) {
                    failure = e;
                }
            }
        }

        @Override
        public void close() {
            try {
                out.close();
            } catch (IOException e) {
                if (failure == null) {
                    failure = e;
                }
            }
        }
    }

    private Response refuse(int status, String reason, String why, HttpServerRequest request) {
        registry.counter("cxr.dicomweb.stow.requests", "status", Integer.toString(status), "reason", reason).increment();
        LOG.warnf("STOW-RS refused %d (%s) from %s: %s", status, reason, remote(request), why);
        Response.ResponseBuilder r = Response.status(status).type("text/plain").entity(why + "\n");
        if (status == 413 || reason.equals("malformed")) {
            // the rest of the body is not read: the connection cannot carry another request
            r.header("Connection", "close");
        }
        return r.build();
    }

    private static long stored(List<StowService.Result> results) {
        return results.stream().filter(r -> r.outcome().stored()).count();
    }

    /** DICOM JSON unless Accept names application/dicom+xml before (or without) application/dicom+json. */
    static boolean prefersXml(String accept) {
        if (accept == null) {
            return false;
        }
        String a = accept.toLowerCase(Locale.ROOT);
        int xml = a.indexOf(DICOM_XML);
        int json = a.indexOf(DICOM_JSON);
        return xml >= 0 && (json < 0 || xml < json);
    }

    private String principal() {
        return identity == null || identity.isAnonymous() ? "anonymous" : identity.getPrincipal().getName();
    }

    private static String remote(HttpServerRequest request) {
        return request == null || request.remoteAddress() == null ? "?" : request.remoteAddress().hostAddress();
    }
}
