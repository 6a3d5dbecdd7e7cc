package org.cxrgateway.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.hl7.fhir.r4.model.DiagnosticReport;
import org.hl7.fhir.r4.model.Resource;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What the peers of {@link EndToEndPeers} hold for one study, so that tests sharing them (and one
 * Quarkus application) count only their own studies.
 */
final class PeerQueries {

    private static final ObjectMapper JSON = new ObjectMapper();
    /** The system of every UID identifier the gateway writes (FhirBundleBuilder). */
    private static final String URN = "urn:ietf:rfc:3986";

    private PeerQueries() {
    }

    static final String SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7";
    static final String PARAMETRIC_MAP = "1.2.840.10008.5.1.4.1.1.30";

    /** One instance in Orthanc: its Orthanc id, SOP Instance UID, modality and SOP Class UID. */
    record PacsInstance(String id, String sopInstanceUid, String modality, String sopClassUid) {
    }

    /** Every instance of the study in Orthanc, in Orthanc's order (duplicates would show twice). */
    static List<PacsInstance> instancesOf(String studyUid) throws Exception {
        String query = """
                {"Level":"Instance","Expand":true,"Query":{"StudyInstanceUID":"%s"}}""".formatted(studyUid);
        JsonNode found = JSON.readTree(EndToEndPeers.orthanc.post("/tools/find", query));
        List<PacsInstance> out = new ArrayList<>();
        for (JsonNode i : found) {
            String id = i.get("ID").asText();
            JsonNode tags = JSON.readTree(EndToEndPeers.orthanc.get("/instances/" + id + "/simplified-tags"));
            out.add(new PacsInstance(id, i.get("MainDicomTags").get("SOPInstanceUID").asText(), tags.path("Modality").asText(),
                    tags.path("SOPClassUID").asText()));
        }
        return out;
    }

    static List<PacsInstance> ofModality(List<PacsInstance> instances, String modality) {
        return instances.stream().filter(i -> i.modality().equals(modality)).toList();
    }

    static List<PacsInstance> ofSopClass(List<PacsInstance> instances, String sopClassUid) {
        return instances.stream().filter(i -> i.sopClassUid().equals(sopClassUid)).toList();
    }

    /**
     * Whether the PACS holds every explanation object the reports announce: one SC per Media (Grad-CAM
     * overlays and guided Grad-CAM pictures) and one Parametric Map per Grad-CAM overlay.
     */
    static boolean explanationsArrived(List<PacsInstance> instances, Collection<DiagnosticReport> reports) {
        return ofSopClass(instances, SECONDARY_CAPTURE).size() >= mediaOf(reports)
                && ofSopClass(instances, PARAMETRIC_MAP).size() >= gradCamMediaOf(reports);
    }

    /** The DiagnosticReports in the FHIR server whose identifier is one of these SR SOP Instance UIDs. */
    static Map<String, DiagnosticReport> reportsFor(Collection<String> srSopInstanceUids) {
        Map<String, DiagnosticReport> out = new LinkedHashMap<>();
        // a report is kept per study and model; it names the SR of its current version as a second identifier
        for (String sop : srSopInstanceUids) {
            EndToEndPeers.fhir.stored.values().stream()
                    .filter(r -> r instanceof DiagnosticReport d && d.getIdentifier().stream()
                            .anyMatch(i -> URN.equals(i.getSystem()) && ("urn:oid:" + sop).equals(i.getValue())))
                    .findFirst().ifPresent(r -> out.put(sop, (DiagnosticReport) r));
        }
        return out;
    }

    static boolean hasImagingStudy(String studyUid) {
        return EndToEndPeers.fhir.stored.containsKey("ImagingStudy|" + URN + "|urn:oid:" + studyUid);
    }

    /** Heatmaps the study's reports link as Media: one SC each is expected in the PACS. */
    static int mediaOf(Collection<DiagnosticReport> reports) {
        return reports.stream().mapToInt(r -> r.getMedia().size()).sum();
    }

    /** The guided Grad-CAM pictures among the Media (models whose package ships the guided graph). */
    static int guidedMediaOf(Collection<DiagnosticReport> reports) {
        return (int) reports.stream().flatMap(r -> r.getMedia().stream())
                .filter(m -> m.getComment() != null && m.getComment().startsWith("Guided Grad-CAM")).count();
    }

    /** The Grad-CAM overlays among the Media: each has a Parametric Map beside it. */
    static int gradCamMediaOf(Collection<DiagnosticReport> reports) {
        return (int) reports.stream().flatMap(r -> r.getMedia().stream())
                .filter(m -> m.getComment() != null && m.getComment().startsWith("Grad-CAM heatmap")).count();
    }
}
