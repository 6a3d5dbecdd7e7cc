package org.cxrgateway.report;

import ca.uhn.fhir.context.BaseRuntimeElementDefinition;
import org.hl7.fhir.r4.model.Bundle;
import org.junit.jupiter.api.Test;

import java.util.Set;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The start-up warm-up leaves HAPI's FhirContext with every R4 definition a delivery bundle needs already
 * scanned (the seconds the first study used to pay), and makes a bundle of the resources delivery sends.
 */
class ReportWarmUpTest {

    @Test
    void warmUpScansTheFhirModelTheBundleUses() throws Exception {
        ReportBuilder builder = new ReportBuilder(ReportSettings.defaults());
        long ms = ReportWarmUp.run(builder);
        assertTrue(ms >= 0);
        Set<String> scanned = FhirBundleBuilder.FHIR.getElementDefinitions().stream()
                .map(BaseRuntimeElementDefinition::getName).collect(Collectors.toSet());
        for (String type : new String[]{"Bundle", "Patient", "ImagingStudy", "DiagnosticReport", "Observation", "Media",
                "Device"}) {
            assertTrue(scanned.contains(type), type + " is scanned by the warm-up; scanned: " + scanned);
        }
        // and a real result's bundle uses no resource type the warm-up left unscanned
        ReportSet set = builder.build(TestResults.study("warm").build());
        Bundle bundle = FhirBundleBuilder.FHIR.newJsonParser().parseResource(Bundle.class, set.fhirBundleJson());
        Set<String> types = bundle.getEntry().stream().map(e -> e.getResource().fhirType()).collect(Collectors.toSet());
        assertTrue(scanned.containsAll(types), "every resource type of a bundle was scanned at warm-up: " + types);
    }
}
