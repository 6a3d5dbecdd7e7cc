package org.cxrgateway.dicom;

import com.pixelmed.dicom.Attribute;
import com.pixelmed.dicom.AttributeList;
import com.pixelmed.dicom.AttributeTag;
import com.pixelmed.dicom.CodedSequenceItem;
import com.pixelmed.dicom.ContentItem;
import com.pixelmed.dicom.ContentItemFactory;
import com.pixelmed.dicom.DicomException;
import com.pixelmed.dicom.DicomOutputStream;
import com.pixelmed.dicom.FileMetaInformation;
import com.pixelmed.dicom.OtherByteAttribute;
import com.pixelmed.dicom.OtherFloatAttribute;
import com.pixelmed.dicom.SequenceAttribute;
import com.pixelmed.dicom.StructuredReport;
import com.pixelmed.dicom.TagFromName;
import com.pixelmed.dicom.TransferSyntax;
import com.pixelmed.dicom.UnsignedShortAttribute;
import org.cxrgateway.dicom.SrModel.Coded;
import org.cxrgateway.dicom.SrModel.Equipment;
import org.cxrgateway.dicom.SrModel.FindingGroup;
import org.cxrgateway.dicom.SrModel.Header;
import org.cxrgateway.dicom.SrModel.InstanceRef;
import org.cxrgateway.dicom.SrModel.MapFrame;
import org.cxrgateway.dicom.SrModel.MeasurementReport;
import org.cxrgateway.dicom.SrModel.ParametricMap;
import org.cxrgateway.dicom.SrModel.SecondaryCapture;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Writes the objects the gateway sends back to the PACS as DICOM Part 10 bytes (explicit VR little endian):
 * a Comprehensive 3D SR with TID 1500 content ({@link MeasurementReportTemplate}), RGB and grayscale Secondary Captures, and float Parametric Maps.
 */
public final class DicomObjectWriter {

    public static final String COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34";
    public static final String SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7";
    public static final String PARAMETRIC_MAP = "1.2.840.10008.5.1.4.1.1.30";
    public static final String KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59";
    /** IHE IOCM's default rejection note title (CID 7011). */
    public static final Coded REJECTED_FOR_QUALITY_REASONS = new Coded("113001", "DCM", "Rejected for Quality Reasons");
    static final Coded KEY_OBJECT_DESCRIPTION = new Coded("113012", "DCM", "Key Object Description");

    static final Coded PROCESSING_ALGORITHM = new Coded("Newcode1", "99IHE", "Processing Algorithm");
    static final Coded QUANTITY = new Coded("246205007", "SCT", "Quantity");
    static final Coded CHEST = new Coded("43799004", "SCT", "Chest");
    /** CID 7202: why the Parametric Map references the radiograph. */
    static final Coded SOURCE_FOR_PROCESSING = new Coded("121322", "DCM", "Source image for image processing operation");
    /** CID 217 "Visual Explanation" (PS3.16), included in CID 7180 for the Quantity Definition of a map. */
    public static final Coded CLASS_ACTIVATION = new Coded("130402", "DCM", "Class activation");
    public static final Coded GRADIENT_WEIGHTED_CLASS_ACTIVATION = new Coded("130403", "DCM", "Gradient-weighted class activation");
    public static final Coded SALIENCY = new Coded("130404", "DCM", "Saliency");
    /** Newer than PixelMed's dictionary: the real-world value range of float pixel data. */
    private static final AttributeTag DOUBLE_FLOAT_RWV_FIRST_VALUE_MAPPED = new AttributeTag(0x0040, 0x9213);
    private static final AttributeTag DOUBLE_FLOAT_RWV_LAST_VALUE_MAPPED = new AttributeTag(0x0040, 0x9214);
    private static final AttributeTag FRAME_LABEL = new AttributeTag(0x0020, 0x9453);
    /** Image Type and Frame Type of a map: derived, primary, image flavor, derived pixel contrast. */
    private static final String IMAGE_TYPE = "DERIVED\\PRIMARY\\STATIC\\NONE";

    private DicomObjectWriter() {
    }

    /** A Comprehensive 3D SR holding TID 1500 content. */
    public static byte[] writeMeasurementReport(MeasurementReport r) throws DicomObjectException {
        try {
            ContentItem root = MeasurementReportTemplate.content(new ContentItemFactory(), r);
            AttributeList list = new StructuredReport(root).getAttributeList();
            Header h = r.header();
            addInstance(list, h, COMPREHENSIVE_3D_SR, "SR");
            emptySequence(list, TagFromName.ReferencedPerformedProcedureStepSequence);
            addEquipment(list, r.equipment());
            // the private scheme of the score concepts must be declared (PS3.3 C.12.1.1.4)
            SequenceAttribute schemes = new SequenceAttribute(TagFromName.CodingSchemeIdentificationSequence);
            AttributeList scheme = new AttributeList();
            put(scheme, TagFromName.CodingSchemeDesignator, MeasurementGroupTemplate.LOCAL_SCHEME);
            put(scheme, TagFromName.CodingSchemeName, "cxr-gateway local codes");
            put(scheme, TagFromName.CodingSchemeResponsibleOrganization, "cxr-gateway");
            schemes.addItem(scheme);
            list.put(schemes);
            // SR Document General
            put(list, TagFromName.InstanceNumber, Integer.toString(h.instanceNumber()));
            put(list, TagFromName.ContentDate, h.contentDate());
            put(list, TagFromName.ContentTime, h.contentTime());
            put(list, TagFromName.CompletionFlag, "COMPLETE");
            put(list, TagFromName.VerificationFlag, "UNVERIFIED");
            SequenceAttribute performed = new SequenceAttribute(TagFromName.PerformedProcedureCodeSequence);
            performed.addItem(code(r.procedureReported()).getAttributeList());
            list.put(performed);
            // every instance the content tree references: the scored images and the maps derived from them
            List<InstanceRef> referenced = new java.util.ArrayList<>(r.imageLibrary());
            for (FindingGroup g : r.groups()) {
                g.explanations().forEach(e -> referenced.add(e.object()));
            }
            list.put(evidence(TagFromName.CurrentRequestedProcedureEvidenceSequence, h.studyInstanceUid(), referenced));
            if (!r.predecessors().isEmpty()) {
                // SR Document General: the reports this one replaces, all SRs of the same study
                list.put(evidence(TagFromName.PredecessorDocumentsSequence, h.studyInstanceUid(), r.predecessors()));
            }
            return toPart10(list, COMPREHENSIVE_3D_SR, h.sopInstanceUid());
        } catch (DicomException | IOException | RuntimeException e) {
            throw new DicomObjectException("cannot build the measurement report: " + e.getMessage(), e);
        }
    }

    /**
     * A Key Object Selection document (TID 2010): the title, an optional description, then one IMAGE item per
     * image object and one COMPOSITE item per other object (SRs), all listed in the evidence sequence too.
     */
    public static byte[] writeKeyObjectSelection(SrModel.KeyObjectSelection k) throws DicomObjectException {
        if (k.objects().isEmpty()) {
            throw new DicomObjectException("a key object selection needs at least one object", null);
        }
        try {
            ContentItemFactory f = new ContentItemFactory();
            ContentItem root = f.makeContainerContentItem(null, null, code(k.title()), true, "DCMR", "2010");
            if (k.description() != null) {
                f.makeTextContentItem(root, "CONTAINS", code(KEY_OBJECT_DESCRIPTION), k.description());
            }
            for (InstanceRef ref : k.objects()) {
                if (ref.sopClassUid().startsWith("1.2.840.10008.5.1.4.1.1.88.")) {
                    f.makeCompositeContentItem(root, "CONTAINS", null, ref.sopClassUid(), ref.sopInstanceUid());
                } else {
                    f.makeImageContentItem(root, "CONTAINS", null, ref.sopClassUid(), ref.sopInstanceUid(),
                            0, 0, null, null, null, null);
                }
            }
            AttributeList list = new StructuredReport(root).getAttributeList();
            Header h = k.header();
            // Key Object Document Series
            addInstance(list, h, KEY_OBJECT_SELECTION, "KO");
            emptySequence(list, TagFromName.ReferencedPerformedProcedureStepSequence);
            addEquipment(list, k.equipment());
            // Key Object Document
            put(list, TagFromName.InstanceNumber, Integer.toString(h.instanceNumber()));
            put(list, TagFromName.ContentDate, h.contentDate());
            put(list, TagFromName.ContentTime, h.contentTime());
            // Referenced Request Sequence is 1C (only for a note made in response to a request): left out
            list.put(evidence(TagFromName.CurrentRequestedProcedureEvidenceSequence, h.studyInstanceUid(), k.objects()));
            return toPart10(list, KEY_OBJECT_SELECTION, h.sopInstanceUid());
        } catch (DicomException | IOException | RuntimeException e) {
            throw new DicomObjectException("cannot build the key object selection: " + e.getMessage(), e);
        }
    }

    /** An RGB or grayscale secondary capture with burned-in annotation, derived from one source image. */
    public static byte[] writeSecondaryCapture(SecondaryCapture sc) throws DicomObjectException {
        int spp = sc.samplesPerPixel();
        if (spp != 1 && spp != 3) {
            throw new DicomObjectException("samples per pixel must be 1 or 3, not " + spp, null);
        }
        if (sc.pixels().length != sc.width() * sc.height() * spp) {
            throw new DicomObjectException("pixel buffer is " + sc.pixels().length + " bytes, expected "
                    + (sc.width() * sc.height() * spp), null);
        }
        try {
            AttributeList list = new AttributeList();
            Header h = sc.header();
            // OT: a derived picture, not an acquisition of the source modality
            addInstance(list, h, SECONDARY_CAPTURE, "OT");
            put(list, TagFromName.BodyPartExamined, "CHEST");
            put(list, TagFromName.ConversionType, "WSD");
            addEquipment(list, sc.equipment());
            put(list, TagFromName.InstanceNumber, Integer.toString(h.instanceNumber()));
            put(list, TagFromName.ContentDate, h.contentDate());
            put(list, TagFromName.ContentTime, h.contentTime());
            put(list, TagFromName.PatientOrientation, null);
            put(list, TagFromName.ImageType, "DERIVED\\SECONDARY");
            put(list, TagFromName.BurnedInAnnotation, "YES");
            put(list, TagFromName.LossyImageCompression, "00");
            put(list, TagFromName.DerivationDescription, sc.derivationDescription());
            list.put(sourceImage(sc.source(), false));
            // Image Pixel: 8-bit RGB colour-by-pixel, or 8-bit MONOCHROME2
            ushort(list, TagFromName.SamplesPerPixel, spp);
            put(list, TagFromName.PhotometricInterpretation, spp == 3 ? "RGB" : "MONOCHROME2");
            if (spp == 3) {
                ushort(list, TagFromName.PlanarConfiguration, 0);
            }
            ushort(list, TagFromName.Rows, sc.height());
            ushort(list, TagFromName.Columns, sc.width());
            ushort(list, TagFromName.BitsAllocated, 8);
            ushort(list, TagFromName.BitsStored, 8);
            ushort(list, TagFromName.HighBit, 7);
            ushort(list, TagFromName.PixelRepresentation, 0);
            Attribute pixels = new OtherByteAttribute(TagFromName.PixelData);
            byte[] data = sc.pixels();
            if ((data.length & 1) != 0) {
                byte[] padded = new byte[data.length + 1];
                System.arraycopy(data, 0, padded, 0, data.length);
                data = padded;
            }
            pixels.setValues(data);
            list.put(pixels);
            return toPart10(list, SECONDARY_CAPTURE, h.sopInstanceUid());
        } catch (DicomException | IOException | RuntimeException e) {
            throw new DicomObjectException("cannot build the secondary capture: " + e.getMessage(), e);
        }
    }

    /**
     * A Parametric Map (PS3.3 A.75): one frame per map, 32-bit float pixel data holding the real-world
     * values directly (Real World Value Mapping slope 1, intercept 0), derived from one projection
     * radiograph. A radiograph has no patient coordinate system: the Frame of Reference the IOD requires is
     * one derived from the source instance (shared by every map of that image), there is no plane position /
     * orientation, and the geometry is the source image's own grid, stated through the Derivation Image and
     * Source Image references and the subsampling in the derivation description.
     */
    public static byte[] writeParametricMap(ParametricMap pm) throws DicomObjectException {
        int n = pm.width() * pm.height();
        if (pm.width() <= 0 || pm.height() <= 0 || pm.width() > 65535 || pm.height() > 65535 || pm.frames().isEmpty()) {
            throw new DicomObjectException("parametric map of " + pm.width() + "x" + pm.height() + " with "
                    + pm.frames().size() + " frames", null);
        }
        for (MapFrame f : pm.frames()) {
            if (f.values().length != n) {
                throw new DicomObjectException("map frame has " + f.values().length + " values, expected " + n, null);
            }
        }
        try {
            AttributeList list = new AttributeList();
            Header h = pm.header();
            // Parametric Map Series: the modality of a derived image map is OT
            addInstance(list, h, PARAMETRIC_MAP, "OT");
            put(list, TagFromName.BodyPartExamined, "CHEST");
            // Frame of Reference (mandatory in this IOD): the detector plane of the source radiograph, which has
            // none of its own; derived from the source instance so that every map of one image shares it
            put(list, TagFromName.FrameOfReferenceUID, pm.frameOfReferenceUid());
            put(list, TagFromName.PositionReferenceIndicator, null);
            addEquipment(list, pm.equipment());
            // Parametric Map Image
            put(list, TagFromName.InstanceNumber, Integer.toString(h.instanceNumber()));
            put(list, TagFromName.ContentDate, h.contentDate());
            put(list, TagFromName.ContentTime, h.contentTime());
            put(list, TagFromName.ImageType, IMAGE_TYPE);
            put(list, TagFromName.ContentLabel, pm.contentLabel());
            put(list, TagFromName.ContentDescription, pm.contentDescription());
            put(list, TagFromName.ContentCreatorName, null);
            put(list, TagFromName.BurnedInAnnotation, "NO");
            put(list, TagFromName.RecognizableVisualFeatures, "NO");
            put(list, TagFromName.LossyImageCompression, "00");
            put(list, TagFromName.PresentationLUTShape, "IDENTITY");
            // an untrained model's map is research output; a released model's is product output
            put(list, TagFromName.ContentQualification, pm.diagnostic() ? "PRODUCT" : "RESEARCH");
            put(list, TagFromName.DerivationDescription, pm.derivationDescription());
            list.put(sourceImage(pm.source(), true));
            emptySequence(list, TagFromName.AcquisitionContextSequence);
            // Floating Point Image Pixel
            ushort(list, TagFromName.SamplesPerPixel, 1);
            put(list, TagFromName.PhotometricInterpretation, "MONOCHROME2");
            ushort(list, TagFromName.Rows, pm.height());
            ushort(list, TagFromName.Columns, pm.width());
            ushort(list, TagFromName.BitsAllocated, 32);
            float[] all = new float[n * pm.frames().size()];
            for (int i = 0; i < pm.frames().size(); i++) {
                System.arraycopy(pm.frames().get(i).values(), 0, all, i * n, n);
            }
            Attribute pixels = new OtherFloatAttribute(TagFromName.FloatPixelData);
            pixels.setValues(all);
            list.put(pixels);
            // Multi-frame Functional Groups and Dimensions
            put(list, TagFromName.NumberOfFrames, Integer.toString(pm.frames().size()));
            String dimensionUid = uidFrom(h.sopInstanceUid());
            SequenceAttribute organisation = new SequenceAttribute(TagFromName.DimensionOrganizationSequence);
            AttributeList org = new AttributeList();
            put(org, TagFromName.DimensionOrganizationUID, dimensionUid);
            organisation.addItem(org);
            list.put(organisation);
            SequenceAttribute index = new SequenceAttribute(TagFromName.DimensionIndexSequence);
            AttributeList idx = new AttributeList();
            put(idx, TagFromName.DimensionOrganizationUID, dimensionUid);
            tag(idx, TagFromName.DimensionIndexPointer, TagFromName.InStackPositionNumber);
            tag(idx, TagFromName.FunctionalGroupPointer, TagFromName.FrameContentSequence);
            put(idx, TagFromName.DimensionDescriptionLabel, "Map");
            index.addItem(idx);
            list.put(index);
            list.put(sharedGroups(pm));
            SequenceAttribute perFrame = new SequenceAttribute(TagFromName.PerFrameFunctionalGroupsSequence);
            for (int i = 0; i < pm.frames().size(); i++) {
                perFrame.addItem(frameGroups(pm.frames().get(i), i + 1));
            }
            list.put(perFrame);
            // Common Instance Reference: the source image is in the same study
            list.put(commonInstanceReference(pm.source()));
            return toPart10(list, PARAMETRIC_MAP, h.sopInstanceUid());
        } catch (DicomException | IOException | RuntimeException e) {
            throw new DicomObjectException("cannot build the parametric map: " + e.getMessage(), e);
        }
    }

    private static SequenceAttribute sharedGroups(ParametricMap pm) throws DicomException {
        AttributeList shared = new AttributeList();
        // Pixel Measures and Plane Position / Orientation: the map's grid in the detector plane, in source pixels
        SequenceAttribute measures = new SequenceAttribute(TagFromName.PixelMeasuresSequence);
        AttributeList pxm = new AttributeList();
        put(pxm, TagFromName.PixelSpacing, decimal(pm.pixelSpacing()[0]) + "\\" + decimal(pm.pixelSpacing()[1]));
        put(pxm, TagFromName.SliceThickness, "1");
        measures.addItem(pxm);
        shared.put(measures);
        SequenceAttribute position = new SequenceAttribute(TagFromName.PlanePositionSequence);
        AttributeList pos = new AttributeList();
        put(pos, TagFromName.ImagePositionPatient, decimal(pm.pixelSpacing()[1] / 2) + "\\" + decimal(pm.pixelSpacing()[0] / 2) + "\\0");
        position.addItem(pos);
        shared.put(position);
        SequenceAttribute orientation = new SequenceAttribute(TagFromName.PlaneOrientationSequence);
        AttributeList ori = new AttributeList();
        put(ori, TagFromName.ImageOrientationPatient, "1\\0\\0\\0\\1\\0");
        orientation.addItem(ori);
        shared.put(orientation);
        // float pixel data are the real-world values already: the identity transformation
        SequenceAttribute identity = new SequenceAttribute(TagFromName.PixelValueTransformationSequence);
        AttributeList idt = new AttributeList();
        put(idt, TagFromName.RescaleIntercept, "0");
        put(idt, TagFromName.RescaleSlope, "1");
        put(idt, TagFromName.RescaleType, "US");
        identity.addItem(idt);
        shared.put(identity);
        // Derivation Image: the method, coded from CID 217, and the scored source image
        SequenceAttribute derivation = new SequenceAttribute(TagFromName.DerivationImageSequence);
        AttributeList d = new AttributeList();
        put(d, TagFromName.DerivationDescription, pm.derivationDescription());
        SequenceAttribute codes = new SequenceAttribute(TagFromName.DerivationCodeSequence);
        codes.addItem(code(pm.derivation()).getAttributeList());
        d.put(codes);
        d.put(sourceImage(pm.source(), true));
        derivation.addItem(d);
        shared.put(derivation);
        // Frame Anatomy: the chest, an unpaired region
        SequenceAttribute anatomy = new SequenceAttribute(TagFromName.FrameAnatomySequence);
        AttributeList a = new AttributeList();
        SequenceAttribute region = new SequenceAttribute(TagFromName.AnatomicRegionSequence);
        region.addItem(code(CHEST).getAttributeList());
        a.put(region);
        put(a, TagFromName.FrameLaterality, "U");
        anatomy.addItem(a);
        shared.put(anatomy);
        SequenceAttribute type = new SequenceAttribute(TagFromName.ParametricMapFrameTypeSequence);
        AttributeList t = new AttributeList();
        put(t, TagFromName.FrameType, IMAGE_TYPE);
        type.addItem(t);
        shared.put(type);
        SequenceAttribute seq = new SequenceAttribute(TagFromName.SharedFunctionalGroupsSequence);
        seq.addItem(shared);
        return seq;
    }

    private static AttributeList frameGroups(MapFrame f, int number) throws DicomException {
        AttributeList frame = new AttributeList();
        SequenceAttribute content = new SequenceAttribute(TagFromName.FrameContentSequence);
        AttributeList c = new AttributeList();
        put(c, TagFromName.StackID, "1");
        put(c, TagFromName.InStackPositionNumber, Integer.toString(number));
        Attribute values = new com.pixelmed.dicom.UnsignedLongAttribute(TagFromName.DimensionIndexValues);
        values.addValue(number);
        c.put(values);
        Attribute frameLabel = new com.pixelmed.dicom.LongStringAttribute(FRAME_LABEL, UTF8);
        frameLabel.addValue(f.label());
        c.put(frameLabel);
        content.addItem(c);
        frame.put(content);
        float min = Float.POSITIVE_INFINITY;
        float max = Float.NEGATIVE_INFINITY;
        for (float v : f.values()) {
            min = Math.min(min, v);
            max = Math.max(max, v);
        }
        if (!(min <= max)) {
            min = 0;
            max = 0;
        }
        SequenceAttribute rwvm = new SequenceAttribute(TagFromName.RealWorldValueMappingSequence);
        AttributeList m = new AttributeList();
        doubles(m, DOUBLE_FLOAT_RWV_FIRST_VALUE_MAPPED, min);
        doubles(m, DOUBLE_FLOAT_RWV_LAST_VALUE_MAPPED, max);
        doubles(m, TagFromName.RealWorldValueIntercept, 0);
        doubles(m, TagFromName.RealWorldValueSlope, 1);
        put(m, TagFromName.LUTExplanation, f.explanation());
        put(m, TagFromName.LUTLabel, f.label());
        SequenceAttribute units = new SequenceAttribute(TagFromName.MeasurementUnitsCodeSequence);
        units.addItem(code(f.units()).getAttributeList());
        m.put(units);
        SequenceAttribute quantity = new SequenceAttribute(TagFromName.QuantityDefinitionSequence);
        AttributeList q = new AttributeList();
        put(q, TagFromName.ValueType, "CODE");
        SequenceAttribute name = new SequenceAttribute(TagFromName.ConceptNameCodeSequence);
        name.addItem(code(QUANTITY).getAttributeList());
        q.put(name);
        SequenceAttribute value = new SequenceAttribute(TagFromName.ConceptCodeSequence);
        value.addItem(code(f.quantity()).getAttributeList());
        q.put(value);
        quantity.addItem(q);
        m.put(quantity);
        rwvm.addItem(m);
        frame.put(rwvm);
        return frame;
    }

    /** Source Image Sequence with one item; the purpose is stated where the IOD asks for it. */
    private static SequenceAttribute sourceImage(InstanceRef ref, boolean withPurpose) throws DicomException {
        SequenceAttribute source = new SequenceAttribute(TagFromName.SourceImageSequence);
        AttributeList item = new AttributeList();
        put(item, TagFromName.ReferencedSOPClassUID, ref.sopClassUid());
        put(item, TagFromName.ReferencedSOPInstanceUID, ref.sopInstanceUid());
        if (withPurpose) {
            SequenceAttribute purpose = new SequenceAttribute(TagFromName.PurposeOfReferenceCodeSequence);
            purpose.addItem(code(SOURCE_FOR_PROCESSING).getAttributeList());
            item.put(purpose);
        }
        source.addItem(item);
        return source;
    }

    private static SequenceAttribute commonInstanceReference(InstanceRef ref) throws DicomException {
        SequenceAttribute series = new SequenceAttribute(TagFromName.ReferencedSeriesSequence);
        AttributeList s = new AttributeList();
        put(s, TagFromName.SeriesInstanceUID, ref.seriesInstanceUid());
        SequenceAttribute instances = new SequenceAttribute(TagFromName.ReferencedInstanceSequence);
        AttributeList i = new AttributeList();
        put(i, TagFromName.ReferencedSOPClassUID, ref.sopClassUid());
        put(i, TagFromName.ReferencedSOPInstanceUID, ref.sopInstanceUid());
        instances.addItem(i);
        s.put(instances);
        series.addItem(s);
        return series;
    }

    /** A UID derived from another one (here: the dimension organisation of a map from its instance UID). */
    private static String uidFrom(String uid) {
        java.util.UUID u = java.util.UUID.nameUUIDFromBytes(("dimension|" + uid).getBytes(java.nio.charset.StandardCharsets.UTF_8));
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(16);
        b.putLong(u.getMostSignificantBits());
        b.putLong(u.getLeastSignificantBits());
        return "2.25." + new java.math.BigInteger(1, b.array());
    }

    /** Patient, study, SOP common and series attributes every object we write carries. */
    private static void addInstance(AttributeList list, Header h, String sopClassUid, String modality)
            throws DicomException {
        addPatientStudy(list, h);
        put(list, TagFromName.SOPClassUID, sopClassUid);
        put(list, TagFromName.SOPInstanceUID, h.sopInstanceUid());
        put(list, TagFromName.Modality, modality);
        addSeries(list, h);
    }

    private static void addPatientStudy(AttributeList list, Header h) throws DicomException {
        put(list, TagFromName.SpecificCharacterSet, "ISO_IR 192");
        put(list, TagFromName.PatientName, h.patientName());
        put(list, TagFromName.PatientID, h.patientId());
        if (h.issuerOfPatientId() != null) {
            put(list, TagFromName.IssuerOfPatientID, h.issuerOfPatientId());
        }
        put(list, TagFromName.PatientBirthDate, h.patientBirthDate());
        put(list, TagFromName.PatientSex, h.patientSex());
        put(list, TagFromName.StudyInstanceUID, h.studyInstanceUid());
        put(list, TagFromName.StudyID, h.studyId());
        put(list, TagFromName.StudyDate, h.studyDate());
        put(list, TagFromName.StudyTime, h.studyTime());
        put(list, TagFromName.AccessionNumber, h.accessionNumber());
        put(list, TagFromName.ReferringPhysicianName, h.referringPhysicianName());
        if (h.studyDescription() != null) {
            put(list, TagFromName.StudyDescription, h.studyDescription());
        }
    }

    private static void addSeries(AttributeList list, Header h) throws DicomException {
        put(list, TagFromName.SeriesInstanceUID, h.seriesInstanceUid());
        put(list, TagFromName.SeriesNumber, Integer.toString(h.seriesNumber()));
        put(list, TagFromName.SeriesDescription, h.seriesDescription());
        put(list, TagFromName.SeriesDate, h.contentDate());
        put(list, TagFromName.SeriesTime, h.contentTime());
    }

    private static void addEquipment(AttributeList list, Equipment eq) throws DicomException {
        put(list, TagFromName.Manufacturer, eq.manufacturer());
        put(list, TagFromName.ManufacturerModelName, eq.modelName());
        put(list, TagFromName.DeviceSerialNumber, eq.deviceSerialNumber());
        put(list, TagFromName.SoftwareVersions, eq.softwareVersion());
        // IHE AIR: the algorithm is contributing equipment with purpose "Processing Algorithm"
        SequenceAttribute contributing = new SequenceAttribute(TagFromName.ContributingEquipmentSequence);
        AttributeList item = new AttributeList();
        SequenceAttribute purpose = new SequenceAttribute(TagFromName.PurposeOfReferenceCodeSequence);
        purpose.addItem(code(PROCESSING_ALGORITHM).getAttributeList());
        item.put(purpose);
        put(item, TagFromName.Manufacturer, eq.manufacturer());
        put(item, TagFromName.ManufacturerModelName, eq.modelName());
        put(item, TagFromName.SoftwareVersions, eq.softwareVersion());
        put(item, TagFromName.DeviceUID, eq.deviceUid());
        contributing.addItem(item);
        list.put(contributing);
    }

    /** Hierarchical SOP Instance Reference macro: study, then series, then instances. */
    private static SequenceAttribute evidence(AttributeTag tag, String studyUid, List<InstanceRef> refs) throws DicomException {
        Map<String, List<InstanceRef>> bySeries = new LinkedHashMap<>();
        for (InstanceRef ref : refs) {
            bySeries.computeIfAbsent(ref.seriesInstanceUid(), k -> new java.util.ArrayList<>()).add(ref);
        }
        SequenceAttribute seq = new SequenceAttribute(tag);
        AttributeList study = new AttributeList();
        put(study, TagFromName.StudyInstanceUID, studyUid);
        SequenceAttribute series = new SequenceAttribute(TagFromName.ReferencedSeriesSequence);
        for (Map.Entry<String, List<InstanceRef>> e : bySeries.entrySet()) {
            AttributeList s = new AttributeList();
            put(s, TagFromName.SeriesInstanceUID, e.getKey());
            SequenceAttribute sops = new SequenceAttribute(TagFromName.ReferencedSOPSequence);
            for (InstanceRef ref : e.getValue()) {
                AttributeList i = new AttributeList();
                put(i, TagFromName.ReferencedSOPClassUID, ref.sopClassUid());
                put(i, TagFromName.ReferencedSOPInstanceUID, ref.sopInstanceUid());
                sops.addItem(i);
            }
            s.put(sops);
            series.addItem(s);
        }
        study.put(series);
        seq.addItem(study);
        return seq;
    }

    private static byte[] toPart10(AttributeList list, String sopClass, String sopInstance) throws DicomException, IOException {
        list.removeGroupLengthAttributes();
        FileMetaInformation.addFileMetaInformation(list, TransferSyntax.ExplicitVRLittleEndian, "CXRGATEWAY");
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        DicomOutputStream out = new DicomOutputStream(bytes, TransferSyntax.ExplicitVRLittleEndian, TransferSyntax.ExplicitVRLittleEndian);
        list.write(out, true);
        out.close();
        return bytes.toByteArray();
    }

    static CodedSequenceItem code(Coded c) throws DicomException {
        return new CodedSequenceItem(c.value(), c.scheme(), c.meaning());
    }

    /** DS values are at most 16 characters. */
    static String decimal(double v) {
        String s = String.format(Locale.ROOT, "%.6f", v);
        s = s.replaceAll("0+$", "");
        return s.endsWith(".") ? s + "0" : s;
    }

    private static final com.pixelmed.dicom.SpecificCharacterSet UTF8 =
            new com.pixelmed.dicom.SpecificCharacterSet(new String[]{"ISO_IR 192"});

    private static void put(AttributeList list, AttributeTag tag, String value) throws DicomException {
        byte[] vr = AttributeList.getDictionary().getValueRepresentationFromTag(tag);
        if (vr == null) {
            throw new DicomException("no dictionary entry for " + tag);
        }
        // UTF-8 so that copied patient names survive whatever script they are in
        Attribute a = com.pixelmed.dicom.AttributeFactory.newAttribute(tag, vr, UTF8);
        if (value != null && !value.isEmpty()) {
            for (String v : value.split("\\\\", -1)) {
                a.addValue(v);
            }
        }
        list.put(a);
    }

    private static void ushort(AttributeList list, AttributeTag tag, int value) throws DicomException {
        Attribute a = new UnsignedShortAttribute(tag);
        a.addValue(value);
        list.put(a);
    }

    private static void doubles(AttributeList list, AttributeTag tag, double value) throws DicomException {
        Attribute a = new com.pixelmed.dicom.FloatDoubleAttribute(tag);
        a.addValue(value);
        list.put(a);
    }

    private static void tag(AttributeList list, AttributeTag tag, AttributeTag value) throws DicomException {
        com.pixelmed.dicom.AttributeTagAttribute a = new com.pixelmed.dicom.AttributeTagAttribute(tag);
        a.addValue(value);
        list.put(a);
    }

    private static void emptySequence(AttributeList list, AttributeTag tag) {
        list.put(new SequenceAttribute(tag));
    }

}
