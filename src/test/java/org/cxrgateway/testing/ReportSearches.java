package org.cxrgateway.testing;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.List;

/**
 * The searches a user makes to find one of our DiagnosticReports on a FHIR server, asked over HTTP:
 * by its identifier (the SR's SOP Instance UID), by its patient's identifier, the findings derived from its
 * ImagingStudy (Observation?derived-from=) and the heatmaps that are part of it (Media?part-of=), and
 * whether every reference it holds resolves on that server.
 */
public final class ReportSearches {

    /** The system of every UID identifier the gateway writes (FhirBundleBuilder). */
    public static final String URN = "urn:ietf:rfc:3986";

    private ReportSearches() {
    }

    /**
     * What the searches found for one report: how many reports its identifier finds, the ids of the reports
     * its patient's identifier finds, its findings and heatmaps by study, and the references that did not resolve.
     */
    public record Found(int byIdentifier, String reportId, List<String> byPatient, int findingsOfStudy, int heatmapsOfStudy,
                        int references, List<String> unresolved, JsonNode report) {
    }

    /** The Patient identifier (system and value) a report's transaction Bundle carries. */
    public static String[] patientIdentifier(String bundleJson) throws Exception {
        for (JsonNode e : new com.fasterxml.jackson.databind.ObjectMapper().readTree(bundleJson).path("entry")) {
            if (e.path("resource").path("resourceType").asText().equals("Patient")) {
                JsonNode id = e.path("resource").path("identifier").get(0);
                return new String[] {id.path("system").asText(), id.path("value").asText()};
            }
        }
        throw new AssertionError("no Patient in the bundle");
    }

    public static Found find(FhirPeer server, String srSopInstanceUid, String patientSystem, String patientId) throws Exception {
        JsonNode found = server.search("DiagnosticReport", "identifier", URN + "|urn:oid:" + srSopInstanceUid);
        int byIdentifier = found.path("entry").size();
        if (byIdentifier == 0) {
            return new Found(0, null, List.of(), 0, 0, 0, List.of(), null);
        }
        JsonNode report = found.path("entry").get(0).path("resource");
        String patient = patientSystem + "|" + patientId;
        JsonNode bySubject;
        if (server.chainsSearches()) {
            bySubject = server.search("DiagnosticReport", "subject.identifier", patient);
        } else {
            JsonNode patients = server.search("Patient", "identifier", patient);
            if (patients.path("entry").size() != 1) {
                throw new AssertionError("Patient?identifier=" + patient + " found " + patients.path("entry").size());
            }
            bySubject = server.search("DiagnosticReport", "subject",
                    "Patient/" + patients.path("entry").get(0).path("resource").path("id").asText());
        }
        List<String> byPatient = new ArrayList<>();
        bySubject.path("entry").forEach(e -> byPatient.add(e.path("resource").path("id").asText()));
        String study = report.path("imagingStudy").path(0).path("reference").asText();
        int findings = server.search("Observation", "derived-from", study).path("entry").size();
        int heatmaps = server.search("Media", "part-of", study).path("entry").size();
        List<String> targets = new ArrayList<>(List.of(report.path("subject").path("reference").asText(), study));
        report.path("result").forEach(r -> targets.add(r.path("reference").asText()));
        report.path("media").forEach(m -> targets.add(m.path("link").path("reference").asText()));
        List<String> unresolved = new ArrayList<>();
        for (String t : targets) {
            if (t.isEmpty() || t.startsWith("urn:") || server.read(t) == null) {
                unresolved.add(t);
            }
        }
        return new Found(byIdentifier, report.path("id").asText(), byPatient, findings, heatmaps, targets.size(), unresolved, report);
    }
}
