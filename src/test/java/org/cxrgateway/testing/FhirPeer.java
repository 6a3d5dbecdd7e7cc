package org.cxrgateway.testing;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.IOException;

/** A real FHIR server the tests deliver to (HAPI's RestfulServer, Medplum's router), asked over HTTP as a user's client would. */
public interface FhirPeer {

    /** GET [base]/type?param=value: the searchset Bundle; an error status throws. */
    JsonNode search(String type, String param, String value) throws IOException, InterruptedException;

    /** GET [base]/Type/id: the resource, or null if the server does not have it. */
    JsonNode read(String reference) throws IOException, InterruptedException;

    /**
     * Whether the server answers chained searches such as DiagnosticReport?subject.identifier=. Medplum's
     * server does (Postgres); its in-memory repository, our test peer, answers them with nothing, so there
     * the same question is asked in its two steps (Patient?identifier=, then DiagnosticReport?subject=).
     */
    boolean chainsSearches();
}
