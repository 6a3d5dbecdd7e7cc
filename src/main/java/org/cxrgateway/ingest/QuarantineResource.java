package org.cxrgateway.ingest;

import jakarta.inject.Inject;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.QueryParam;
import jakarta.ws.rs.WebApplicationException;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;

import java.io.IOException;
import java.util.List;
import java.util.Map;

/** Operator endpoints: see which studies are quarantined and why, and retry them once the cause is fixed. */
@Path("/admin/quarantine")
@Produces(MediaType.APPLICATION_JSON)
public class QuarantineResource {

    @Inject
    IngestService ingest;

    @GET
    public List<StudyAssembler.QuarantinedStudy> list() {
        return assembler().quarantined();
    }

    /**
     * Releases one study, or all when none is named; they are assembled and published again at once,
     * asynchronously (GET shows them again if they fail again).
     */
    @POST
    @Path("/retry")
    public Map<String, Object> retry(@QueryParam("study") String studyUid) throws IOException {
        StudyAssembler a = assembler();
        List<String> retried = a.retry(studyUid);
        if (studyUid != null && retried.isEmpty()) {
            throw error(Response.Status.NOT_FOUND, "study " + studyUid + " is not quarantined");
        }
        return Map.of("retried", retried, "stillQuarantined", a.quarantined().size());
    }

    private StudyAssembler assembler() {
        StudyAssembler a = ingest.assembler();
        if (a == null) {
            throw error(Response.Status.CONFLICT, "the listener role does not run in this process");
        }
        return a;
    }

    private static WebApplicationException error(Response.Status status, String message) {
        return new WebApplicationException(Response.status(status).type(MediaType.APPLICATION_JSON)
                .entity(Map.of("error", message)).build());
    }
}
