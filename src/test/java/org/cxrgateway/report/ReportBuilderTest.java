package org.cxrgateway.report;

import org.cxrgateway.schema.v2.PixelEncoding;
import org.cxrgateway.schema.v2.SkippedInstance;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.testing.Tools;
import org.hl7.fhir.r4.model.Bundle;
import org.hl7.fhir.r4.model.ImagingStudy;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ReportBuilderTest {

    static Path out(String name) throws Exception {
        Path dir = Path.of("target", "report-test");
        Files.createDirectories(dir);
        return dir.resolve(name);
    }

    @Test
    void srAndScPassDciodvfyAndDsrdump() throws Exception {
        ReportSet set = new ReportBuilder(ReportSettings.defaults()).build(TestResults.study("10").build());
        assertEquals(1, set.dicom().stream().filter(o -> o.kind().equals("SR")).count());
        // two positive findings in the fixture, both with a guided map: a colour and a guided heatmap each, and a map
        assertEquals(4, set.dicom().stream().filter(o -> o.kind().equals("SC")).count());
        assertEquals(2, set.dicom().stream().filter(o -> o.kind().equals("PM")).count());
        String srText = null;
        for (ReportSet.DicomObject o : set.dicom()) {
            Path f = out(o.kind() + "-" + o.sopInstanceUid() + ".dcm");
            Files.write(f, o.part10());
            List<String> errors = Tools.dciodvfyErrors(f);
            assertEquals(List.of(), errors, "dciodvfy on " + o.kind());
            Tools.Result dump = Tools.run("dcmdump", "-Un", "+P", "0008,0016", "+P", "0008,103e", f.toString());
            assertTrue(dump.out().contains(o.sopClassUid()), dump.out());
            assertTrue(dump.out().contains("NOT FOR DIAGNOSTIC USE"), dump.out());
            if (o.kind().equals("SR")) {
                Tools.Result sr = Tools.run("dsrdump", "-Ec", "+Pl", "+Pu", "+Pc", "+Pt", f.toString());
                assertEquals(0, sr.exit(), sr.out());
                srText = sr.out();
                // dcmtk 3.6.7 warns that its VR checker skips UTF-8; any other warning (relationship, value type) fails
                assertEquals(List.of(), sr.lines("W: ").stream().filter(l -> !l.contains("VR checker")).toList(), "dsrdump warnings");
                String text = sr.out();
                for (String s : new String[]{"Imaging Measurement Report", "Observer Type", "Procedure reported",
                        "Image Library", "Tracking Unique Identifier", "Pleural effusion", "Present", "Absent",
                        "Algorithm Version", "AI - not for diagnostic use", "UNVERIFIED", "COMPLETE",
                        "1.2.826.0.1.3680043.10.1234.10.1.1"}) {
                    assertTrue(text.contains(s), "SR lacks " + s + "\n" + text);
                }
            } else if (o.kind().equals("SC")) {
                Tools.Result sc = Tools.run("dcmdump", "+P", "0028,0301", "+P", "0018,0015", "+P", "0008,2112",
                        "+P", "0028,0004", f.toString());
                assertTrue(sc.out().contains("YES"), sc.out());
                assertTrue(sc.out().contains("CHEST"), sc.out());
                assertTrue(sc.out().contains("SourceImageSequence"), sc.out());
            } else {
                assertParametricMap(f, 2);
            }
        }
        // the SR's measurement groups reference every map and picture made for their finding (IHE AIR)
        for (ReportSet.DicomObject o : set.dicom()) {
            if (!o.kind().equals("SR")) {
                assertTrue(srText.contains(o.sopInstanceUid()), "SR does not reference " + o.kind() + " " + o.sopInstanceUid());
            }
        }
        assertEquals(2, srText.split("Gradient-weighted class activation", -1).length - 1, srText);
        // one colour (RGB) and one guided (MONOCHROME2) heatmap per finding
        long grey = set.dicom().stream().filter(o -> o.kind().equals("SC")).filter(o -> {
            try {
                Path f = out("pi-" + o.sopInstanceUid() + ".dcm");
                Files.write(f, o.part10());
                return Tools.run("dcmdump", "+P", "0028,0004", f.toString()).out().contains("MONOCHROME2");
            } catch (Exception e) {
                throw new AssertionError(e);
            }
        }).count();
        assertEquals(2, grey);
    }

    /** Float pixel data, the CID 217 quantity per frame, real-world value mapping, references to the source. */
    static void assertParametricMap(Path f, int frames) throws Exception {
        Tools.Result pm = Tools.run("dcmdump", "-q", "-Un", f.toString());
        String d = pm.out();
        assertTrue(d.contains("1.2.840.10008.5.1.4.1.1.30"), d);
        assertTrue(d.contains("(7fe0,0008) OF"), "float pixel data\n" + d);
        assertTrue(d.contains("NumberOfFrames") && d.contains("[" + frames + "]"), d);
        assertTrue(d.contains("[130403]") && d.contains("Gradient-weighted class activation"), d);
        if (frames > 1) {
            assertTrue(d.contains("[130404]") && d.contains("Saliency"), d);
        }
        assertTrue(d.contains("RealWorldValueMappingSequence"), d);
        assertTrue(d.contains("DerivationImageSequence") && d.contains("SourceImageSequence"), d);
        assertTrue(d.contains("1.2.826.0.1.3680043.10.1234."), "references its source image\n" + d);
    }

    @Test
    void parametricMapsCanBeTurnedOffAndGuidedHeatmapsNeedAGuidedMap() throws Exception {
        ReportSet off = new ReportBuilder(ReportSettings.defaults().withParametricMaps(false)).build(TestResults.study("16").build());
        assertEquals(0, off.dicom().stream().filter(o -> o.kind().equals("PM")).count());
        assertEquals(4, off.dicom().stream().filter(o -> o.kind().equals("SC")).count());
        TestResults noGuided = TestResults.study("17");
        noGuided.guided = false;
        ReportSet plain = new ReportBuilder(ReportSettings.defaults()).build(noGuided.build());
        assertEquals(2, plain.dicom().stream().filter(o -> o.kind().equals("SC")).count());
        List<ReportSet.DicomObject> maps = plain.dicom().stream().filter(o -> o.kind().equals("PM")).toList();
        assertEquals(2, maps.size());
        for (ReportSet.DicomObject o : maps) {
            Path f = out("plain-PM-" + o.sopInstanceUid() + ".dcm");
            Files.write(f, o.part10());
            assertEquals(List.of(), Tools.dciodvfyErrors(f));
            assertParametricMap(f, 1);
        }
        // the policy cap counts findings: one finding, so one colour SC, one guided SC and one map
        ReportSet one = new ReportBuilder(ReportSettings.defaults().withMaxSecondaryCaptures(1)).build(TestResults.study("18").build());
        assertEquals(List.of("SR", "SC", "SC", "PM"), one.dicom().stream().map(ReportSet.DicomObject::kind).toList());
    }

    @Test
    void sideBySideDoublesTheWidthAndPassesDciodvfy() throws Exception {
        ReportSet set = new ReportBuilder(ReportSettings.defaults().withSideBySide(true)).build(TestResults.study("19").build());
        ReportSet.DicomObject sc = set.dicom().stream().filter(o -> o.kind().equals("SC")).findFirst().orElseThrow();
        Path f = out("side-" + sc.sopInstanceUid() + ".dcm");
        Files.write(f, sc.part10());
        assertEquals(List.of(), Tools.dciodvfyErrors(f));
        String dims = Tools.run("dcmdump", "+P", "0028,0010", "+P", "0028,0011", f.toString()).out();
        assertTrue(dims.contains("US 256") && dims.contains("US 512"), dims);
    }

    @Test
    void hostileGuidedMapIsAReportException() {
        TestResults t = TestResults.study("21");
        StudyResult r = t.build();
        org.cxrgateway.schema.v2.Finding f = r.getImages().get(0).getRuns().get(0).getFindings().get(0);
        // claims 224x224 but inflates to a few bytes; then a region outside the working image
        f.getGuided().setValues(java.nio.ByteBuffer.wrap(TestResults.deflate(new byte[10])));
        assertThrows(ReportException.class, () -> new ReportBuilder(ReportSettings.defaults()).build(r));
        StudyResult r2 = t.build();
        r2.getImages().get(0).getRuns().get(0).getFindings().get(0).getGuided().setRegionX(200);
        assertThrows(ReportException.class, () -> new ReportBuilder(ReportSettings.defaults()).build(r2));
        StudyResult r3 = t.build();
        r3.getImages().get(0).getRuns().get(0).getFindings().get(0).getGuided().setWidth(1 << 20);
        assertThrows(ReportException.class, () -> new ReportBuilder(ReportSettings.defaults()).build(r3));
    }

    @Test
    void stagedSrsAreTheWholeBuildsAndBadPicturesStopTheStage() throws Exception {
        StudyResult r = TestResults.study("22").build();
        ReportBuilder builder = new ReportBuilder(ReportSettings.defaults());
        ReportSet whole = builder.build(r);
        ReportBuilder.Staged staged = builder.stage(r, Supersession.NONE);
        List<ReportSet.DicomObject> srs = whole.dicom().stream().filter(o -> o.kind().equals("SR")).toList();
        assertEquals(srs.size(), staged.srs().size());
        for (int i = 0; i < srs.size(); i++) {
            assertEquals(srs.get(i).sopInstanceUid(), staged.srs().get(i).sopInstanceUid());
            assertArrayEquals(srs.get(i).part10(), staged.srs().get(i).part10(), "the SR a PACS gets first is the final one");
        }
        assertEquals(srs.size(), staged.srsOnly().dicom().size());
        ReportSet completed = staged.complete();
        assertEquals(whole.dicom().size(), completed.dicom().size());
        for (int i = 0; i < whole.dicom().size(); i++) {
            assertEquals(whole.dicom().get(i).sopInstanceUid(), completed.dicom().get(i).sopInstanceUid());
            assertArrayEquals(whole.dicom().get(i).part10(), completed.dicom().get(i).part10());
        }
        assertEquals(whole.fhirBundleJson(), completed.fhirBundleJson());
        assertTrue(completed == staged.complete(), "rendered once");
        // a guided map that cannot be drawn is refused by the stage, before any SR could leave
        StudyResult bad = TestResults.study("23").build();
        bad.getImages().get(0).getRuns().get(0).getFindings().get(0).getGuided()
                .setValues(java.nio.ByteBuffer.wrap(TestResults.deflate(new byte[10])));
        assertThrows(ReportException.class, () -> builder.stage(bad, Supersession.NONE));
    }

    /**
     * A preview (the result before its guided maps, the findings that will get one saying so) writes the very SRs
     * of its full result: the same bytes, naming the guided Secondary Captures still to come. Its pictures are
     * refused: they come from the full result.
     */
    @Test
    void aPreviewWritesTheFullResultsSrsAndNoPictures() throws Exception {
        StudyResult full = TestResults.study("24").build();
        StudyResult preview = TestResults.preview(full);
        ReportBuilder builder = new ReportBuilder(ReportSettings.defaults());
        ReportSet whole = builder.build(full);
        List<ReportSet.DicomObject> srs = whole.dicom().stream().filter(o -> o.kind().equals("SR")).toList();
        ReportBuilder.Staged staged = builder.stage(preview, Supersession.NONE);
        assertEquals(srs.size(), staged.srs().size());
        for (int i = 0; i < srs.size(); i++) {
            assertArrayEquals(srs.get(i).part10(), staged.srs().get(i).part10(), "SR " + i);
        }
        long guidedScs = whole.dicom().stream().filter(o -> o.kind().equals("SC")).count() / 2;
        assertTrue(guidedScs > 0, "the full result has guided Secondary Captures for the SR to name");
        assertThrows(ReportException.class, staged::complete);
        assertThrows(ReportException.class, () -> builder.build(preview));
        // what a preview's pictures are drawn from is checked before its SRs could leave, as for a full result
        StudyResult badCam = TestResults.preview(full);
        badCam.getImages().get(0).getRuns().get(0).getFindings().get(0).getActivation().setValues(List.of(1f, 2f));
        assertThrows(ReportException.class, () -> builder.stage(badCam, Supersession.NONE));
        // without the flags the preview's SRs would name no guided picture, and so differ
        StudyResult bare = TestResults.preview(full);
        bare.getImages().forEach(img -> img.getRuns().forEach(run -> run.getFindings().forEach(f -> f.setGuidedFollows(false))));
        assertFalse(java.util.Arrays.equals(srs.get(0).part10(), builder.stage(bare, Supersession.NONE).srs().get(0).part10()));
    }

    @Test
    void diagnosticModelHasNoDisclaimer() throws Exception {
        TestResults t = TestResults.study("11");
        t.diagnostic = true;
        t.bits = 16;
        t.encoding = PixelEncoding.RAW;
        ReportSet set = new ReportBuilder(ReportSettings.defaults()).build(t.build());
        for (ReportSet.DicomObject o : set.dicom()) {
            Path f = out("diag-" + o.kind() + "-" + o.sopInstanceUid() + ".dcm");
            Files.write(f, o.part10());
            assertEquals(List.of(), Tools.dciodvfyErrors(f));
            assertTrue(!Tools.run("dcmdump", f.toString()).out().contains("NOT FOR DIAGNOSTIC"));
        }
    }

    /**
     * The ImagingStudy counts every instance of the study, the skipped ones (a lateral view, another body part) too,
     * and lists only the scored images in its series.
     */
    @Test
    void imagingStudyCountsTheSkippedInstancesToo() throws Exception {
        StudyResult r = TestResults.study("skipped").build();
        r.setSkipped(List.of(
                SkippedInstance.newBuilder().setSopInstanceUid("1.2.826.0.1.3680043.10.1234.skipped.2.1").setReason("LATERAL_VIEW").build(),
                SkippedInstance.newBuilder().setSopInstanceUid("1.2.826.0.1.3680043.10.1234.skipped.3.1").setReason("NOT_CHEST").build()));
        ReportSet set = new ReportBuilder(ReportSettings.defaults()).build(r);
        Bundle bundle = FhirBundleBuilder.FHIR.newJsonParser().parseResource(Bundle.class, set.fhirBundleJson());
        ImagingStudy study = bundle.getEntry().stream().map(Bundle.BundleEntryComponent::getResource)
                .filter(ImagingStudy.class::isInstance).map(ImagingStudy.class::cast).findFirst().orElseThrow();
        assertEquals(3, study.getNumberOfInstances());
        assertEquals(1, study.getSeries().size());
        assertEquals(List.of(r.getImages().get(0).getSopInstanceUid()),
                study.getSeries().get(0).getInstance().stream().map(ImagingStudy.ImagingStudySeriesInstanceComponent::getUid).toList());
    }

    @Test
    void uidsAreDeterministicAndDistinct() throws Exception {
        StudyResult r = TestResults.study("12").build();
        ReportSet a = new ReportBuilder(ReportSettings.defaults()).build(r);
        ReportSet b = new ReportBuilder(ReportSettings.defaults()).build(StudyResult.fromByteBuffer(r.toByteBuffer()));
        assertEquals(a.dicom().size(), b.dicom().size());
        for (int i = 0; i < a.dicom().size(); i++) {
            assertEquals(a.dicom().get(i).sopInstanceUid(), b.dicom().get(i).sopInstanceUid());
            assertArrayEquals(a.dicom().get(i).part10(), b.dicom().get(i).part10());
            assertTrue(a.dicom().get(i).sopInstanceUid().matches("2\\.25\\.[1-9][0-9]{0,38}"));
            assertTrue(a.dicom().get(i).sopInstanceUid().length() <= 64);
        }
        assertEquals(a.fhirBundleJson(), b.fhirBundleJson());
        ReportSet other = new ReportBuilder(ReportSettings.defaults()).build(TestResults.study("13").build());
        assertNotEquals(a.dicom().get(0).sopInstanceUid(), other.dicom().get(0).sopInstanceUid());
        assertEquals(a.dicom().size(), a.dicom().stream().map(ReportSet.DicomObject::sopInstanceUid).distinct().count());
    }

    @Test
    void maxSecondaryCapturesLimitsHeatmaps() throws Exception {
        TestResults t = TestResults.study("14");
        t.guided = false;
        ReportSet set = new ReportBuilder(ReportSettings.defaults().withMaxSecondaryCaptures(1)).build(t.build());
        assertEquals(1, set.dicom().stream().filter(o -> o.kind().equals("SC")).count());
        ReportSet none = new ReportBuilder(ReportSettings.defaults().withMaxSecondaryCaptures(0)).build(t.build());
        assertEquals(0, none.dicom().stream().filter(o -> !o.kind().equals("SR")).count());
    }

    @Test
    void badInputIsAReportExceptionNotACrash() {
        TestResults t = TestResults.study("15");
        StudyResult r = t.build();
        r.getImages().get(0).getImage().setPixels(java.nio.ByteBuffer.wrap(new byte[]{1, 2, 3}));
        assertThrows(ReportException.class, () -> new ReportBuilder(ReportSettings.defaults()).build(r));
        StudyResult noImages = t.build();
        noImages.setImages(List.of());
        assertThrows(ReportException.class, () -> new ReportBuilder(ReportSettings.defaults()).build(noImages));
    }

    @Test
    void viridisEndsMatchTheReferenceColormap() {
        int lo = HeatmapRenderer.viridis(0);
        int hi = HeatmapRenderer.viridis(1);
        // matplotlib viridis: #440154 at 0, #fde725 at 1; the polynomial fit is within a few levels
        assertTrue(Math.abs((lo >> 16) - 0x44) <= 4 && Math.abs((lo >> 8 & 0xff) - 0x01) <= 4 && Math.abs((lo & 0xff) - 0x54) <= 4, Integer.toHexString(lo));
        assertTrue(Math.abs((hi >> 16) - 0xfd) <= 4 && Math.abs((hi >> 8 & 0xff) - 0xe7) <= 4 && Math.abs((hi & 0xff) - 0x25) <= 6, Integer.toHexString(hi));
    }
}
