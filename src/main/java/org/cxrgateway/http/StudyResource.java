package org.cxrgateway.http;

import io.quarkus.security.identity.SecurityIdentity;
import jakarta.inject.Inject;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.WebApplicationException;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import org.cxrgateway.delivery.DeliveryService;
import org.cxrgateway.delivery.StudyHistory;
import org.cxrgateway.ingest.IngestService;
import org.cxrgateway.ingest.StudyAssembler;
import org.jboss.logging.Logger;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Operator endpoints on one study (role admin, as all of /admin): its life, retraction of its AI results, and
 * a re-score by the models now loaded. Answers carry UIDs, counts, times and the operator's reason; never
 * patient names or identifiers.
 */
@Path("/admin/studies/{uid}")
@Produces(MediaType.APPLICATION_JSON)
public class StudyResource {

    private static final Logger LOG = Logger.getLogger(StudyResource.class);
    /** A reason is one line of operator text that goes into an SR and a FHIR conclusion: bounded. */
    static final int MAX_REASON = 256;
    private static final String UID = "[0-9]+(\\.[0-9]+)*";

    @Inject
    DeliveryService delivery;

    @Inject
    IngestService ingest;

    @Inject
    SecurityIdentity identity;

    @Inject
    io.micrometer.core.instrument.MeterRegistry metrics;

    public record RetractRequest(String reason) {
    }

    /** The study's life: spooled instances (where the listener runs here), each revision and its deliveries, a retraction. */
    @GET
    public Map<String, Object> life(@PathParam("uid") String uid) throws IOException {
        checkUid(uid);
        Optional<StudyHistory.Life> life = delivery.life(uid);
        Optional<StudyAssembler.SpooledStudy> spooled = spooled(uid);
        if (life.isEmpty() && spooled.isEmpty()) {
            refused("not_found");
            throw error(Response.Status.NOT_FOUND, "study " + uid + " is neither spooled nor delivered here");
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("studyInstanceUid", uid);
        out.put("received", spooled.orElse(null));
        List<Map<String, Object>> revisions = new ArrayList<>();
        String state = "received";
        if (life.isPresent()) {
            StudyHistory.Life l = life.get();
            for (int i = 0; i < l.issues().size(); i++) {
                StudyHistory.Issue issue = l.issues().get(i);
                Map<String, Object> r = new LinkedHashMap<>();
                r.put("revision", issue.revision());
                r.put("jobId", issue.jobId());
                r.put("handedOverAtEpochMs", issue.handedOverAtEpochMs());
                r.put("status", l.retraction() != null ? "retracted" : i < l.issues().size() - 1 ? "superseded" : "current");
                r.put("reports", issue.srs().stream().map(s -> Map.of("modelId", s.modelId(), "modelVersion", s.modelVersion(),
                        "srSopInstanceUid", s.sr().sopInstanceUid(), "images", s.images().size())).toList());
                r.put("objects", issue.objects().size());
                r.put("deliveries", l.deliveries().stream().filter(d -> d.key().equals(issue.key()))
                        .map(d -> Map.of("destination", d.destination(), "outcome", d.outcome(), "atEpochMs", d.atEpochMs())).toList());
                revisions.add(r);
            }
            state = l.retraction() != null ? "retracted" : l.issues().size() > 1 ? "amended" : l.issues().isEmpty() ? "received" : "scored";
            out.put("retraction", l.retraction());
        }
        out.put("revisions", revisions);
        out.put("state", state);
        return out;
    }

    /** Withdraws the study's AI results; 202 once recorded (delivery follows), 409 when already retracted. */
    @POST
    @Path("/retract")
    @Consumes(MediaType.APPLICATION_JSON)
    public Response retract(@PathParam("uid") String uid, RetractRequest request) {
        checkUid(uid);
        String reason = request == null || request.reason() == null ? "" : request.reason().strip();
        if (reason.isEmpty() || reason.length() > MAX_REASON || reason.chars().anyMatch(c -> c < 0x20)) {
            LOG.warnf("retraction of study %s refused: reason missing, over %d characters or not one line", uid, MAX_REASON);
            refused("bad_reason");
            throw error(Response.Status.BAD_REQUEST, "a reason of 1 to " + MAX_REASON + " characters on one line is required");
        }
        String by = identity == null || identity.isAnonymous() ? "anonymous" : identity.getPrincipal().getName();
        try {
            StudyHistory.Life l = delivery.retract(uid, reason, by).getKey();
            return Response.accepted(Map.of("studyInstanceUid", uid, "retraction", l.retraction(), "revisions", l.issues().size()))
                    .build();
        } catch (DeliveryService.UnknownStudy e) {
            refused("not_found");
            LOG.infof("retraction of study %s refused: nothing delivered for it here", uid);
            throw error(Response.Status.NOT_FOUND, e.getMessage());
        } catch (StudyHistory.AlreadyRetracted e) {
            LOG.infof("retraction of study %s refused: already retracted", uid);
            refused("already_retracted");
            throw error(Response.Status.CONFLICT, "study " + uid + " was already retracted at " + e.retraction.atEpochMs()
                    + " by " + e.retraction.by());
        }
    }

    /** Publishes the spooled study again as a new revision for the models now loaded; 202, then it supersedes as usual. */
    @POST
    @Path("/rescore")
    public Response rescore(@PathParam("uid") String uid) throws IOException {
        checkUid(uid);
        StudyAssembler a = ingest.assembler();
        if (a == null) {
            refused("conflict");
            throw error(Response.Status.CONFLICT, "the listener role (and its spool) does not run in this process");
        }
        if (delivery.life(uid).map(l -> l.retraction() != null).orElse(false)) {
            refused("conflict");
            LOG.infof("re-score of study %s refused: retracted", uid);
            throw error(Response.Status.CONFLICT, "study " + uid + " was retracted: its results are not sent again");
        }
        String refused = a.rescore(uid);
        if (refused != null) {
            refused(refused.contains("not in the spool") ? "not_found" : "conflict");
            LOG.infof("re-score of study %s refused: %s", uid, refused);
            throw error(refused.contains("not in the spool") ? Response.Status.NOT_FOUND : Response.Status.CONFLICT, refused);
        }
        return Response.accepted(Map.of("studyInstanceUid", uid, "rescore", "queued")).build();
    }

    private Optional<StudyAssembler.SpooledStudy> spooled(String uid) throws IOException {
        StudyAssembler a = ingest.assembler();
        return a == null ? Optional.empty() : a.spooled(uid);
    }

    private void checkUid(String uid) {
        if (uid == null || uid.length() > 64 || !uid.matches(UID)) {
            refused("bad_uid");
            LOG.warn("/admin/studies request refused: the path does not hold a UID");
            throw error(Response.Status.BAD_REQUEST, "not a UID");
        }
    }

    private void refused(String reason) {
        metrics.counter("cxr.admin.studies.refused", "reason", reason).increment();
    }

    private static WebApplicationException error(Response.Status status, String message) {
        return new WebApplicationException(Response.status(status).type(MediaType.APPLICATION_JSON)
                .entity(Map.of("error", message)).build());
    }
}
