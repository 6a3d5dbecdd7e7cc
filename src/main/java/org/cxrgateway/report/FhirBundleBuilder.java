package org.cxrgateway.report;

import ca.uhn.fhir.context.FhirContext;
import org.cxrgateway.dicom.SrModel.Coded;
import org.cxrgateway.schema.v2.ImageResult;
import org.cxrgateway.schema.v2.StudyInfo;
import org.cxrgateway.schema.v2.StudyResult;
import org.hl7.fhir.r4.model.Attachment;
import org.hl7.fhir.r4.model.Bundle;
import org.hl7.fhir.r4.model.CodeableConcept;
import org.hl7.fhir.r4.model.Coding;
import org.hl7.fhir.r4.model.DateTimeType;
import org.hl7.fhir.r4.model.Device;
import org.hl7.fhir.r4.model.DiagnosticReport;
import org.hl7.fhir.r4.model.Identifier;
import org.hl7.fhir.r4.model.ImagingStudy;
import org.hl7.fhir.r4.model.InstantType;
import org.hl7.fhir.r4.model.Media;
import org.hl7.fhir.r4.model.Observation;
import org.hl7.fhir.r4.model.Patient;
import org.hl7.fhir.r4.model.Quantity;
import org.hl7.fhir.r4.model.Reference;
import org.hl7.fhir.r4.model.Resource;

import java.util.Date;
import java.util.List;
import java.util.Locale;

/**
 * One FHIR R4 transaction Bundle per result: Patient, ImagingStudy, Device per model, Observation per finding,
 * Media per heatmap, DiagnosticReport per model run. Every entry is conditional on a deterministic identifier,
 * so a retried or replayed Bundle creates nothing new. There is one DiagnosticReport per study and model
 * (identifier from the study UID and model id, not the revision) and one Observation per study, image, model
 * and finding: both are written by conditional update, so a later revision updates them in place ("amended",
 * meta.versionId moving forward) instead of adding a second live answer; the rest are conditional creates.
 */
public final class FhirBundleBuilder {

    /** Building a FhirContext scans the model classes (hundreds of ms): one per JVM. */
    public static final FhirContext FHIR = FhirContext.forR4Cached();

    static final String URN_SYSTEM = "urn:ietf:rfc:3986";
    static final String SCT = "http://snomed.info/sct";
    static final String LOINC = "http://loinc.org";
    static final String DCM = "http://dicom.nema.org/resources/ontology/DCM";
    static final String UCUM = "http://unitsofmeasure.org";

    record FindingOutput(String trackingUid, String label, Coded code, double probability, double threshold,
                         boolean positive, String sourceSopInstanceUid) {
    }

    /** One heatmap SC as FHIR Media; title says which explanation of which finding it shows. */
    record MediaOutput(String scSopInstanceUid, String title, byte[] png, String sourceSopInstanceUid) {
    }

    /** {@code amended}: the run supersedes an earlier result of the same model for this study. */
    record RunOutputs(String modelId, String modelVersion, boolean diagnostic, String deviceUid, String srSopInstanceUid,
                      List<FindingOutput> findings, List<MediaOutput> media, boolean amended) {
    }

    /** The identifier of the one DiagnosticReport of a study and model, whatever the revision. */
    public static Identifier reportIdentifier(String studyUid, String modelId) {
        return oid(DerivedUids.uid("report", studyUid, modelId));
    }

    private final ReportSettings settings;

    FhirBundleBuilder(ReportSettings settings) {
        this.settings = settings;
    }

    String build(StudyResult result, Coded procedure, List<RunOutputs> runs) {
        StudyInfo s = result.getStudy();
        Bundle bundle = new Bundle();
        bundle.setType(Bundle.BundleType.TRANSACTION);
        bundle.setIdentifier(oid(DerivedUids.uid("bundle", s.getStudyInstanceUid(), result.getJobId(),
                Integer.toString(result.getRevision()))));

        Patient patient = new Patient();
        Identifier pid = new Identifier().setSystem(patientSystem(s)).setValue(patientId(s));
        patient.addIdentifier(pid);
        Reference patientRef = add(bundle, patient, "Patient", pid, DerivedUids.uuid("patient", pid.getSystem(), pid.getValue()));

        ImagingStudy study = new ImagingStudy();
        Identifier studyId = oid(s.getStudyInstanceUid());
        study.addIdentifier(studyId);
        study.setStatus(ImagingStudy.ImagingStudyStatus.AVAILABLE);
        study.setSubject(patientRef);
        if (s.getAccessionNumber() != null && !s.getAccessionNumber().isBlank()) {
            study.addIdentifier(new Identifier().setType(new CodeableConcept(new Coding(
                            "http://terminology.hl7.org/CodeSystem/v2-0203", "ACSN", "Accession ID")))
                    .setValue(s.getAccessionNumber()));
        }
        // every instance of the study, the skipped ones (lateral views, other body parts) too: the series list
        // below names only the images that were scored
        study.setNumberOfInstances(result.getImages().size() + result.getSkipped().size());
        for (ImageResult img : result.getImages()) {
            ImagingStudy.ImagingStudySeriesComponent series = study.getSeries().stream()
                    .filter(x -> x.getUid().equals(img.getSeriesInstanceUid())).findFirst()
                    .orElseGet(() -> study.addSeries().setUid(img.getSeriesInstanceUid())
                            .setModality(new Coding("http://dicom.nema.org/resources/ontology/DCM", "DX", "Digital Radiography")));
            series.addInstance().setUid(img.getSopInstanceUid())
                    .setSopClass(new Coding(URN_SYSTEM, "urn:oid:" + img.getSopClassUid(), null));
        }
        if (s.getStudyDescription() != null) {
            study.setDescription(s.getStudyDescription());
        }
        Reference studyRef = add(bundle, study, "ImagingStudy", studyId, DerivedUids.uuid("study", s.getStudyInstanceUid()));

        for (RunOutputs run : runs) {
            Device device = new Device();
            Identifier devId = oid(run.deviceUid());
            device.addIdentifier(devId);
            device.addDeviceName().setName(run.modelId()).setType(Device.DeviceNameType.MODELNAME);
            device.setModelNumber(run.modelId());
            device.addVersion().setValue(run.modelVersion());
            device.setManufacturer(settings.manufacturer());
            device.setType(new CodeableConcept().setText("AI algorithm (chest X-ray classifier)"));
            if (!run.diagnostic()) {
                device.addNote().setText(ReportBuilder.NOT_FOR_DIAGNOSTIC_USE);
            }
            Reference deviceRef = add(bundle, device, "Device", devId, DerivedUids.uuid("device", run.deviceUid()));

            DiagnosticReport report = new DiagnosticReport();
            Identifier reportId = reportIdentifier(s.getStudyInstanceUid(), run.modelId());
            report.addIdentifier(reportId);
            // the SR that renders this version of the report
            report.addIdentifier(oid(run.srSopInstanceUid()));
            report.setStatus(run.amended() ? DiagnosticReport.DiagnosticReportStatus.AMENDED
                    : DiagnosticReport.DiagnosticReportStatus.PRELIMINARY);
            report.addCategory(new CodeableConcept(new Coding("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD", "Radiology")));
            report.setCode(new CodeableConcept(coding(procedure)));
            report.setSubject(patientRef);
            report.setIssuedElement(new InstantType(new Date(result.getCreatedAtEpochMs())));
            report.addImagingStudy(studyRef);
            StringBuilder conclusion = new StringBuilder();
            for (FindingOutput f : run.findings()) {
                Observation o = new Observation();
                Identifier oid = oid(DerivedUids.uid("observation", s.getStudyInstanceUid(), f.sourceSopInstanceUid(),
                        run.modelId(), f.code().scheme() + ":" + f.code().value()));
                o.addIdentifier(oid);
                // the SR measurement group's tracking UID
                o.addIdentifier(oid(f.trackingUid()));
                o.setStatus(run.amended() ? Observation.ObservationStatus.AMENDED : Observation.ObservationStatus.PRELIMINARY);
                o.addCategory(new CodeableConcept(new Coding("http://terminology.hl7.org/CodeSystem/observation-category", "imaging", "Imaging")));
                o.setCode(new CodeableConcept(coding(f.code())).setText(f.label()));
                o.setSubject(patientRef);
                o.setValue(new Quantity().setValue(round(f.probability())).setUnit("probability").setSystem(UCUM).setCode("1"));
                o.addInterpretation(new CodeableConcept(f.positive()
                        ? new Coding("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "POS", "Positive")
                        : new Coding("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "NEG", "Negative")));
                o.addReferenceRange().setHigh(new Quantity().setValue(round(f.threshold())).setSystem(UCUM).setCode("1").setUnit("probability"))
                        .setText("operating threshold of " + run.modelId() + " " + run.modelVersion());
                o.setDevice(deviceRef);
                o.addDerivedFrom(studyRef);
                if (!run.diagnostic()) {
                    o.addNote().setText(ReportBuilder.NOT_FOR_DIAGNOSTIC_USE);
                }
                report.addResult(put(bundle, o, "Observation", oid, DerivedUids.uuid("observation", oid.getValue())));
                if (f.positive()) {
                    report.addConclusionCode(new CodeableConcept(coding(f.code())));
                    conclusion.append(conclusion.length() == 0 ? "" : "; ")
                            .append(String.format(Locale.ROOT, "%s (p=%.3f)", f.label(), f.probability()));
                }
            }
            for (MediaOutput m : run.media()) {
                Media media = new Media();
                Identifier mid = oid(m.scSopInstanceUid());
                media.addIdentifier(mid);
                media.setStatus(Media.MediaStatus.COMPLETED);
                media.setType(new CodeableConcept(new Coding("http://terminology.hl7.org/CodeSystem/media-type", "image", "Image")));
                media.setSubject(patientRef);
                media.setDevice(deviceRef);
                media.addPartOf(studyRef);
                media.setContent(new Attachment().setContentType("image/png").setData(m.png())
                        .setTitle(m.title()));
                Reference mediaRef = add(bundle, media, "Media", mid, DerivedUids.uuid("media", m.scSopInstanceUid()));
                report.addMedia().setLink(mediaRef).setComment(m.title());
            }
            String prefix = run.diagnostic() ? "" : ReportBuilder.NOT_FOR_DIAGNOSTIC_USE + ". ";
            report.setConclusion(prefix + (conclusion.length() == 0
                    ? "No finding above its operating threshold (" + run.modelId() + " " + run.modelVersion() + ")."
                    : "Positive: " + conclusion + " (" + run.modelId() + " " + run.modelVersion() + ")."));
            put(bundle, report, "DiagnosticReport", reportId, DerivedUids.uuid("report", reportId.getValue()));
        }
        if (s.getStudyDate() != null && s.getStudyDate().matches("\\d{8}")) {
            String d = s.getStudyDate();
            DateTimeType started = new DateTimeType(d.substring(0, 4) + "-" + d.substring(4, 6) + "-" + d.substring(6, 8));
            study.setStartedElement(started);
        }
        return FHIR.newJsonParser().encodeResourceToString(bundle);
    }

    private static Reference add(Bundle bundle, Resource r, String type, Identifier id, String uuid) {
        String fullUrl = "urn:uuid:" + uuid;
        bundle.addEntry().setFullUrl(fullUrl).setResource(r).getRequest()
                .setMethod(Bundle.HTTPVerb.POST).setUrl(type)
                .setIfNoneExist("identifier=" + id.getSystem() + "|" + id.getValue());
        return new Reference(fullUrl);
    }

    /** A conditional update on the identifier: the resource is created, or updated in place when it exists. */
    private static Reference put(Bundle bundle, Resource r, String type, Identifier id, String uuid) {
        String fullUrl = "urn:uuid:" + uuid;
        bundle.addEntry().setFullUrl(fullUrl).setResource(r).getRequest()
                .setMethod(Bundle.HTTPVerb.PUT).setUrl(type + "?identifier=" + id.getSystem() + "|" + id.getValue());
        return new Reference(fullUrl);
    }

    /**
     * The bundle as sent before, with its DiagnosticReports and Observations marked entered-in-error and the
     * reports' conclusions replaced by {@code statement}: written again, it withdraws them in place.
     */
    static String enteredInError(String bundleJson, String statement) {
        Bundle b = FHIR.newJsonParser().parseResource(Bundle.class, bundleJson);
        b.setIdentifier(oid(DerivedUids.uid("bundle-retraction", b.getIdentifier().getValue(), statement)));
        for (Bundle.BundleEntryComponent e : b.getEntry()) {
            if (e.getResource() instanceof DiagnosticReport r) {
                r.setStatus(DiagnosticReport.DiagnosticReportStatus.ENTEREDINERROR);
                r.setConclusion(statement);
                r.getConclusionCode().clear();
            } else if (e.getResource() instanceof Observation o) {
                o.setStatus(Observation.ObservationStatus.ENTEREDINERROR);
                o.addNote().setText(statement);
            }
        }
        return FHIR.newJsonParser().encodeResourceToString(b);
    }

    private String patientSystem(StudyInfo s) {
        String issuer = s.getIssuerOfPatientId();
        if (issuer == null || issuer.isBlank()) {
            return settings.fhirPatientIdentifierSystem();
        }
        // an issuer is a local name, not a URI: scope it under the configured system
        return settings.fhirPatientIdentifierSystem() + ":" + issuer.trim().replaceAll("[^A-Za-z0-9._-]", "_");
    }

    private static String patientId(StudyInfo s) {
        return s.getPatientId() == null || s.getPatientId().isBlank() ? "UNKNOWN" : s.getPatientId();
    }

    static Identifier oid(String uid) {
        return new Identifier().setSystem(URN_SYSTEM).setValue("urn:oid:" + uid);
    }

    static Coding coding(Coded c) {
        String system = switch (c.scheme()) {
            case "SCT", "SNM3", "SRT" -> SCT;
            case "LN" -> LOINC;
            case "DCM" -> DCM;
            default -> "urn:cxr-gateway:codes:" + c.scheme();
        };
        return new Coding(system, c.value(), c.meaning());
    }

    private static java.math.BigDecimal round(double v) {
        return java.math.BigDecimal.valueOf(v).setScale(4, java.math.RoundingMode.HALF_UP);
    }
}
