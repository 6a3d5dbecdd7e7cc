package org.cxrgateway.delivery;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import jakarta.inject.Inject;
import org.cxrgateway.GatewayConfig;
import org.cxrgateway.queue.EmbeddedKafkaTestResource;
import org.cxrgateway.queue.JobPublisher;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSet;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.report.TestResults;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.testing.Tools;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The default test configuration has no PACS and no FHIR server: the CDI wiring falls back to the outbox,
 * says where (the startup line prints {@link DeliveryService#describe()}), and a published result lands
 * there as Part 10 files and the FHIR Bundle. Shares the default Quarkus test application with the other
 * tests that only use the embedded broker.
 */
@QuarkusTest
@WithTestResource(EmbeddedKafkaTestResource.class)
class DeliveryOutboxTest {

    @Inject
    JobPublisher publisher;
    @Inject
    DeliveryService service;
    @Inject
    GatewayConfig gateway;

    @Test
    void withNoDestinationConfiguredResultsGoToTheOutbox() throws Exception {
        Path outbox = gateway.dataDir().resolve("outbox").toAbsolutePath();
        assertEquals(List.of("outbox"), service.destinationNames());
        assertEquals("[outbox -> " + outbox + "]", service.describe());

        StudyResult r = TestResults.study(Long.toString(UUID.randomUUID().getMostSignificantBits() & Long.MAX_VALUE)).build();
        ReportSet expected = new ReportBuilder(ReportSettings.defaults()).build(r);
        publisher.publish(r).get(30, TimeUnit.SECONDS);

        Path study = outbox.resolve(DeliveryLedger.safe(r.getStudy().getStudyInstanceUid()));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!(Files.exists(study.resolve("bundle.json")) && expected.dicom().stream()
                .allMatch(o -> Files.exists(study.resolve(o.kind() + "-" + o.sopInstanceUid() + ".dcm"))))) {
            assertTrue(System.nanoTime() < deadline, "outbox files of " + study);
            Thread.sleep(50);
        }
        for (ReportSet.DicomObject o : expected.dicom()) {
            Path f = study.resolve(o.kind() + "-" + o.sopInstanceUid() + ".dcm");
            Tools.Result dump = Tools.run("dcmdump", "+P", "0008,0018", f.toString());
            assertEquals(0, dump.exit(), dump.out());
            assertTrue(dump.out().contains(o.sopInstanceUid()), dump.out());
        }
        JsonNode bundle = new ObjectMapper().readTree(study.resolve("bundle.json").toFile());
        assertEquals("Bundle", bundle.get("resourceType").asText());
        assertEquals("transaction", bundle.get("type").asText());
        assertTrue(bundle.toString().contains("urn:oid:" + r.getStudy().getStudyInstanceUid()));
    }
}
