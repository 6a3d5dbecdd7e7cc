package org.cxrgateway.dicom;

import com.pixelmed.dicom.ContentItem;
import com.pixelmed.dicom.ContentItemFactory;
import com.pixelmed.dicom.DicomException;
import org.cxrgateway.dicom.SrModel.Coded;
import org.cxrgateway.dicom.SrModel.Equipment;
import org.cxrgateway.dicom.SrModel.FindingGroup;
import org.cxrgateway.dicom.SrModel.InstanceRef;
import org.cxrgateway.dicom.SrModel.MeasurementReport;

import static org.cxrgateway.dicom.DicomObjectWriter.code;

/**
 * TID 1500 "Measurement Report" as we fill it (schemas/sr/README.md): language, the device observer
 * context (TID 1002 / 1004), the procedure reported, the image library, the imaging measurements (one
 * {@link MeasurementGroupTemplate} per finding) and the disclaimer, with every code it uses. As highdicom's
 * {@code MeasurementReport}.
 */
public final class MeasurementReportTemplate {

    /** The procedure reported when the study names none: a single-view chest radiograph. */
    public static final Coded DEFAULT_PROCEDURE = new Coded("36554-4", "LN", "XR Chest Single view");

    static final Coded IMAGING_MEASUREMENT_REPORT = new Coded("126000", "DCM", "Imaging Measurement Report");
    static final Coded LANGUAGE = new Coded("121049", "DCM", "Language of Content Item and Descendants");
    static final Coded ENGLISH_US = new Coded("en-US", "RFC5646", "English (United States)");
    static final Coded OBSERVER_TYPE = new Coded("121005", "DCM", "Observer Type");
    static final Coded DEVICE = new Coded("121007", "DCM", "Device");
    static final Coded DEVICE_OBSERVER_UID = new Coded("121012", "DCM", "Device Observer UID");
    static final Coded DEVICE_OBSERVER_NAME = new Coded("121013", "DCM", "Device Observer Name");
    static final Coded DEVICE_OBSERVER_MANUFACTURER = new Coded("121014", "DCM", "Device Observer Manufacturer");
    static final Coded DEVICE_OBSERVER_MODEL = new Coded("121015", "DCM", "Device Observer Model Name");
    static final Coded PROCEDURE_REPORTED = new Coded("121058", "DCM", "Procedure reported");
    static final Coded IMAGE_LIBRARY = new Coded("111028", "DCM", "Image Library");
    static final Coded IMAGE_LIBRARY_GROUP = new Coded("126200", "DCM", "Image Library Group");
    static final Coded IMAGING_MEASUREMENTS = new Coded("126010", "DCM", "Imaging Measurements");
    static final Coded COMMENT = new Coded("121106", "DCM", "Comment");

    private MeasurementReportTemplate() {
    }

    /** The content tree of the report, its root the TID 1500 container. */
    static ContentItem content(ContentItemFactory f, MeasurementReport r) throws DicomException {
        ContentItem root = f.makeContainerContentItem(null, null, code(IMAGING_MEASUREMENT_REPORT), true, "DCMR", "1500");
        f.makeCodeContentItem(root, "HAS CONCEPT MOD", code(LANGUAGE), code(ENGLISH_US));
        // TID 1002 / 1004: the observer is the algorithm, not a person
        f.makeCodeContentItem(root, "HAS OBS CONTEXT", code(OBSERVER_TYPE), code(DEVICE));
        Equipment eq = r.equipment();
        f.makeUIDContentItem(root, "HAS OBS CONTEXT", code(DEVICE_OBSERVER_UID), eq.deviceUid());
        f.makeTextContentItem(root, "HAS OBS CONTEXT", code(DEVICE_OBSERVER_NAME), eq.modelName());
        f.makeTextContentItem(root, "HAS OBS CONTEXT", code(DEVICE_OBSERVER_MANUFACTURER), eq.manufacturer());
        f.makeTextContentItem(root, "HAS OBS CONTEXT", code(DEVICE_OBSERVER_MODEL), eq.modelName());
        f.makeCodeContentItem(root, "HAS CONCEPT MOD", code(PROCEDURE_REPORTED), code(r.procedureReported()));

        ContentItem library = f.makeContainerContentItem(root, "CONTAINS", code(IMAGE_LIBRARY), true);
        ContentItem libraryGroup = f.makeContainerContentItem(library, "CONTAINS", code(IMAGE_LIBRARY_GROUP), true);
        for (InstanceRef ref : r.imageLibrary()) {
            f.makeImageContentItem(libraryGroup, "CONTAINS", null, ref.sopClassUid(), ref.sopInstanceUid(),
                    0, 0, null, null, null, null);
        }

        // a retraction carries no measurements: the container is left out rather than sent empty
        if (!r.groups().isEmpty()) {
            ContentItem measurements = f.makeContainerContentItem(root, "CONTAINS", code(IMAGING_MEASUREMENTS), true);
            for (FindingGroup g : r.groups()) {
                MeasurementGroupTemplate.add(f, measurements, g);
            }
        }
        if (r.statement() != null) {
            // what this report does to its predecessors (supersedes, retracts), for a reader of the content
            f.makeTextContentItem(root, "CONTAINS", code(COMMENT), r.statement());
        }
        if (r.disclaimer() != null) {
            f.makeTextContentItem(root, "CONTAINS", code(COMMENT), r.disclaimer());
        }
        return root;
    }
}
