package org.cxrgateway.delivery;

import jakarta.inject.Inject;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.QueryParam;
import jakarta.ws.rs.core.MediaType;

import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionStage;

/** Operator endpoints: see what was dead-lettered, and replay it once the destination is back. */
@Path("/admin/dead-letters")
@Produces(MediaType.APPLICATION_JSON)
public class DeadLetterResource {

    @Inject
    DeliveryService service;

    @Inject
    DeliveryConfig config;

    public record Entry(String id, String destination, String studyInstanceUid, String reason, String status, long atEpochMs) {
    }

    @GET
    public List<Entry> list() {
        return service.deadLetters().stream()
                .map(l -> new Entry(l.id(), l.destination(), l.studyInstanceUid(), l.reason(), l.status(), l.atEpochMs())).toList();
    }

    /** Replays the dead letters of one destination, or of all when none is named; answers when they are settled. */
    @POST
    @Path("/replay")
    public CompletionStage<Map<String, Object>> replay(@QueryParam("destination") String destination) {
        return service.replay(destination).thenApply(n -> Map.of("replayed", n, "stillDeadLettered", service.deadLetters().size()));
    }
}
