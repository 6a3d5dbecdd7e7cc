package org.cxrgateway.dicom;

import com.pixelmed.dicom.ContentItem;
import com.pixelmed.dicom.ContentItemFactory;
import com.pixelmed.dicom.DicomException;
import org.cxrgateway.dicom.SrModel.Coded;
import org.cxrgateway.dicom.SrModel.FindingGroup;

import static org.cxrgateway.dicom.DicomObjectWriter.code;
import static org.cxrgateway.dicom.DicomObjectWriter.decimal;

/**
 * TID 1501 "Measurement and Qualitative Evaluation Group" as we fill it for one model output on one image
 * (schemas/sr/README.md), with TID 4019 algorithm identification and one TID 300 measurement, and every
 * code it uses: the tracking, finding and algorithm concepts, the local 99CXR score concepts, and the
 * Present / Absent evaluation values. As highdicom's {@code MeasurementsAndQualitativeEvaluations}.
 */
public final class MeasurementGroupTemplate {

    /** The private coding scheme of the score concepts, declared in the SR (PS3.3 C.12.1.1.4). */
    public static final String LOCAL_SCHEME = "99CXR";

    static final Coded MEASUREMENT_GROUP = new Coded("125007", "DCM", "Measurement Group");
    static final Coded TRACKING_ID = new Coded("112039", "DCM", "Tracking Identifier");
    static final Coded TRACKING_UID = new Coded("112040", "DCM", "Tracking Unique Identifier");
    static final Coded FINDING = new Coded("121071", "DCM", "Finding");
    static final Coded ALGORITHM_NAME = new Coded("111001", "DCM", "Algorithm Name");
    static final Coded ALGORITHM_VERSION = new Coded("111003", "DCM", "Algorithm Version");
    static final Coded SOURCE_OF_MEASUREMENT = new Coded("121112", "DCM", "Source of Measurement");
    /**
     * No DCM concept for "probability of finding X" exists (111047 is "Probability of cancer", and 122157,
     * suggested in our notes, is "LV Findings"), so the score is a private-scheme concept, documented in
     * schemas/sr/README.md.
     */
    public static final Coded PROBABILITY = new Coded("AIPROB", LOCAL_SCHEME, "AI model output probability");
    public static final Coded THRESHOLD = new Coded("AITHR", LOCAL_SCHEME, "AI model operating threshold");
    /** The unit of the score and the threshold, and of the Parametric Map values. */
    public static final Coded NO_UNITS = new Coded("1", "UCUM", "no units");
    /** The qualitative evaluation's values (TID 1501 row 11). */
    public static final Coded PRESENT = new Coded("52101004", "SCT", "Present");
    public static final Coded ABSENT = new Coded("2667000", "SCT", "Absent");
    /** TID 1410's concept for a picture of what a measurement is about: the heatmap SCs of a finding. */
    public static final Coded ILLUSTRATION = new Coded("121200", "DCM", "Illustration of ROI");

    private MeasurementGroupTemplate() {
    }

    /** Adds the group for {@code g} under the Imaging Measurements container. */
    static void add(ContentItemFactory f, ContentItem measurements, FindingGroup g) throws DicomException {
        ContentItem group = f.makeContainerContentItem(measurements, "CONTAINS", code(MEASUREMENT_GROUP), true, "DCMR", "1501");
        f.makeTextContentItem(group, "HAS OBS CONTEXT", code(TRACKING_ID), g.trackingId());
        f.makeUIDContentItem(group, "HAS OBS CONTEXT", code(TRACKING_UID), g.trackingUid());
        f.makeCodeContentItem(group, "CONTAINS", code(FINDING), code(g.finding()));
        // TID 4019 algorithm identification, at group level so that a reader of the group alone sees it
        f.makeTextContentItem(group, "HAS CONCEPT MOD", code(ALGORITHM_NAME), g.algorithmName());
        f.makeTextContentItem(group, "HAS CONCEPT MOD", code(ALGORITHM_VERSION), g.algorithmVersion());
        // TID 300 measurement: the score, inferred from the source image
        ContentItem num = f.makeNumericContentItem(group, "CONTAINS", code(PROBABILITY),
                decimal(g.probability()), code(NO_UNITS));
        f.makeTextContentItem(num, "HAS CONCEPT MOD", code(ALGORITHM_NAME), g.algorithmName());
        f.makeTextContentItem(num, "HAS CONCEPT MOD", code(ALGORITHM_VERSION), g.algorithmVersion());
        f.makeImageContentItem(num, "INFERRED FROM", code(SOURCE_OF_MEASUREMENT), g.image().sopClassUid(),
                g.image().sopInstanceUid(), 0, 0, null, null, null, null);
        f.makeNumericContentItem(group, "CONTAINS", code(THRESHOLD), decimal(g.threshold()), code(NO_UNITS));
        // TID 1501 row 11: qualitative evaluation, concept = the finding, value = present / absent
        f.makeCodeContentItem(group, "CONTAINS", code(g.finding()), code(g.evaluation()));
        // IHE AIR: the maps and pictures explaining this finding, named by what they show (CID 217)
        for (SrModel.Explanation e : g.explanations()) {
            f.makeImageContentItem(group, "CONTAINS", code(e.concept()), e.object().sopClassUid(),
                    e.object().sopInstanceUid(), 0, 0, null, null, null, null);
        }
    }
}
