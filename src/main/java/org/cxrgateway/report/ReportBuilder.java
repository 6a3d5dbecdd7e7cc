package org.cxrgateway.report;

import org.cxrgateway.dicom.DicomObjectException;
import org.cxrgateway.dicom.DicomObjectWriter;
import org.cxrgateway.dicom.MeasurementGroupTemplate;
import org.cxrgateway.dicom.MeasurementReportTemplate;
import org.cxrgateway.dicom.SrModel;
import org.cxrgateway.dicom.SrModel.Coded;
import org.cxrgateway.dicom.SrModel.InstanceRef;
import org.cxrgateway.schema.v2.Code;
import org.cxrgateway.schema.v2.Finding;
import org.cxrgateway.schema.v2.ImageResult;
import org.cxrgateway.schema.v2.ModelRun;
import org.cxrgateway.schema.v2.StudyInfo;
import org.cxrgateway.schema.v2.StudyResult;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Turns one StudyResult into one TID 1500 SR per model run, and for the positive findings (per the policy)
 * a colour Grad-CAM Secondary Capture, a grayscale guided Grad-CAM Secondary Capture when the finding has a
 * guided map, and a Parametric Map, all referenced from the finding's measurement group; and one FHIR
 * transaction Bundle. Pure function of the message and the settings.
 */
public final class ReportBuilder {

    public static final String NOT_FOR_DIAGNOSTIC_USE = "AI - not for diagnostic use";
    static final String SOFTWARE_VERSION = "cxr-gateway 0.1";

    private final ReportSettings settings;

    public ReportBuilder(ReportSettings settings) {
        this.settings = settings;
    }

    /** A model run, identified across the images of the study. */
    record RunKey(String modelId, String version) {
    }

    /** One finding to explain: a finding on an image, with its run. */
    record ScCandidate(ImageResult image, ModelRun run, Finding finding, int runIndex, String studyUid) {
    }

    /** Outputs of a model run on one study, gathered across images. */
    static final class RunGroup {
        final RunKey key;
        final int index;
        ModelRun first;
        final List<ImageResult> images = new ArrayList<>();
        final List<Finding[]> findingsPerImage = new ArrayList<>();

        RunGroup(RunKey key, int index) {
            this.key = key;
            this.index = index;
        }
    }

    public ReportSet build(StudyResult result) throws ReportException {
        return build(result, Supersession.NONE);
    }

    /** The SR UID of one model run: a later revision gets its own even when the instance set is the same (re-score). */
    static String srUid(String studyUid, String sopList, ModelRun run, int revision) {
        return revision <= 0 ? DerivedUids.uid("sr", studyUid, sopList, run.getModelId(), run.getModelVersion())
                : DerivedUids.uid("sr", studyUid, sopList, run.getModelId(), run.getModelVersion(), "revision " + revision);
    }

    /**
     * One SR series per study and model, whatever the version: a re-score by a new version supersedes in the same
     * series, so a viewer that groups by series shows the newest report there.
     */
    static String srSeriesUid(String studyUid, String modelId) {
        return DerivedUids.uid("sr-series", studyUid, modelId);
    }

    /** Series-level, so the same for every version; the version is in each SR's equipment. */
    static String srSeriesDescription(String modelId, boolean diagnostic) {
        String suffix = diagnostic ? "" : " - NOT FOR DIAGNOSTIC USE";
        return truncate("AI SR " + modelId, 64 - suffix.length()) + suffix;
    }

    private static String sopList(StudyResult result) {
        return String.join(",", result.getImages().stream().map(ImageResult::getSopInstanceUid).sorted().toList());
    }

    /** The SR each model run of this result issues, without rendering anything: what delivery records on hand-over. */
    public static List<IssuedSr> issuedSrs(StudyResult result) throws ReportException {
        if (result.getStudy() == null || blank(result.getStudy().getStudyInstanceUid()) || result.getImages() == null
                || result.getImages().isEmpty()) {
            throw new ReportException("result has no StudyInstanceUID or no images");
        }
        String studyUid = result.getStudy().getStudyInstanceUid();
        List<IssuedSr> out = new ArrayList<>();
        for (RunGroup g : groupRuns(result).values()) {
            ModelRun run = g.first;
            List<InstanceRef> images = g.images.stream()
                    .map(i -> new InstanceRef(i.getSopClassUid(), i.getSopInstanceUid(), i.getSeriesInstanceUid())).toList();
            out.add(new IssuedSr(run.getModelId(), run.getModelVersion(), run.getDiagnostic(), new InstanceRef(DicomObjectWriter.COMPREHENSIVE_3D_SR,
                    srUid(studyUid, sopList(result), run, result.getRevision()),
                    srSeriesUid(studyUid, run.getModelId())), images));
        }
        return out;
    }

    /**
     * The reports of one result. A model run with predecessors in {@code supersession} gets an SR that names them
     * (Predecessor Documents Sequence) and says it supersedes them, and an "amended" FHIR report; with
     * rejection notes on, the earlier objects this result does not re-issue are listed in an IOCM rejection note.
     */
    public ReportSet build(StudyResult result, Supersession supersession) throws ReportException {
        return stage(result, supersession).complete();
    }

    /**
     * {@link #build(StudyResult, Supersession)} in two steps: this one writes the SRs, which need only the UIDs and
     * instance numbers of their explanation objects (fixed here), not the objects themselves; {@link Staged#complete}
     * renders those objects and the FHIR bundle. Delivery sends the SRs to a PACS between the two, so that the
     * report a reader waits for does not wait for the pictures (issue 13, idle studies on the shared 2-core machine:
     * rendering and sending the 12 pictures took 1.1 s of delivery's 1.2 s; the SRs alone are acknowledged 0.1 s
     * after delivery starts). The inputs of the pictures are decoded and checked here, so that bad content stops
     * the result before its SRs leave.
     */
    public Staged stage(StudyResult result, Supersession supersession) throws ReportException {
        StudyInfo study = result.getStudy();
        if (study == null || blank(study.getStudyInstanceUid())) {
            throw new ReportException("result has no StudyInstanceUID");
        }
        if (result.getImages() == null || result.getImages().isEmpty()) {
            throw new ReportException("result has no images");
        }
        String studyUid = study.getStudyInstanceUid();
        Map<RunKey, RunGroup> runs = groupRuns(result);
        String sopList = sopList(result);
        Instant created = Instant.ofEpochMilli(result.getCreatedAtEpochMs());
        String date = DateTimeFormatter.ofPattern("yyyyMMdd").withZone(ZoneOffset.UTC).format(created);
        String time = DateTimeFormatter.ofPattern("HHmmss").withZone(ZoneOffset.UTC).format(created);
        Coded procedure = study.getProcedureCode() != null ? coded(study.getProcedureCode())
                : MeasurementReportTemplate.DEFAULT_PROCEDURE;

        // First choose which findings get explanation objects: their UIDs go into the SR's measurement groups.
        List<ScCandidate> candidates = new ArrayList<>();
        for (RunGroup g : runs.values()) {
            for (int i = 0; i < g.images.size(); i++) {
                for (Finding f : g.findingsPerImage.get(i)) {
                    if ((f.getPositive() || !settings.positiveOnly()) && f.getActivation() != null) {
                        candidates.add(new ScCandidate(g.images.get(i), g.first, f, g.index, studyUid));
                    }
                }
            }
        }
        candidates.sort(Comparator.comparingDouble((ScCandidate c) -> -c.finding().getProbability()));
        List<ScCandidate> chosen = candidates.subList(0, Math.min(Math.max(0, settings.maxSecondaryCaptures()), candidates.size()));
        Map<String, Planned> planned = new LinkedHashMap<>();
        for (ScCandidate c : chosen) {
            planned.put(candidateKey(c.image(), c.run(), c.finding()), plan(studyUid, c));
        }

        List<ReportSet.DicomObject> objects = new ArrayList<>();
        List<FhirBundleBuilder.RunOutputs> fhirRuns = new ArrayList<>();
        for (RunGroup g : runs.values()) {
            ModelRun run = g.first;
            String srSeries = srSeriesUid(studyUid, run.getModelId());
            String srUid = srUid(studyUid, sopList, run, result.getRevision());
            List<InstanceRef> predecessors = supersession.predecessorsOf(run.getModelId()).stream()
                    .filter(p -> !p.sopInstanceUid().equals(srUid)).toList();
            String deviceUid = DerivedUids.uid("device", run.getModelId(), run.getModelVersion());
            SrModel.Equipment eq = equipment(run, deviceUid);
            String disclaimer = run.getDiagnostic() ? null
                    : NOT_FOR_DIAGNOSTIC_USE + (blank(run.getIntendedUse()) ? "" : ": " + run.getIntendedUse());
            SrModel.Header h = header(study, srSeries, settings.seriesNumberBase() + 10 * g.index,
                    srSeriesDescription(run.getModelId(), run.getDiagnostic()), srUid, result.getRevision() + 1, date, time);
            List<InstanceRef> library = new ArrayList<>();
            List<SrModel.FindingGroup> groups = new ArrayList<>();
            List<FhirBundleBuilder.FindingOutput> fhirFindings = new ArrayList<>();
            for (int i = 0; i < g.images.size(); i++) {
                ImageResult img = g.images.get(i);
                InstanceRef ref = new InstanceRef(img.getSopClassUid(), img.getSopInstanceUid(), img.getSeriesInstanceUid());
                library.add(ref);
                for (Finding f : g.findingsPerImage.get(i)) {
                    Coded code = coded(f.getCode());
                    String trackingUid = DerivedUids.uid("tracking", studyUid, img.getSopInstanceUid(),
                            run.getModelId(), run.getModelVersion(), code.scheme() + ":" + code.value());
                    String trackingId = g.images.size() == 1 ? f.getLabel() : f.getLabel() + " (image " + (i + 1) + ")";
                    Planned p = planned.get(candidateKey(img, run, f));
                    Coded evaluation = f.getPositive() ? MeasurementGroupTemplate.PRESENT : MeasurementGroupTemplate.ABSENT;
                    groups.add(new SrModel.FindingGroup(trackingId, trackingUid, code, evaluation,
                            clamp01(f.getProbability()), clamp01(f.getThreshold()), run.getModelId(), run.getModelVersion(), ref,
                            p == null ? List.of() : p.srReferences()));
                    fhirFindings.add(new FhirBundleBuilder.FindingOutput(trackingUid, f.getLabel(), code,
                            clamp01(f.getProbability()), clamp01(f.getThreshold()), f.getPositive(), img.getSopInstanceUid()));
                }
            }
            byte[] sr;
            try {
                sr = DicomObjectWriter.writeMeasurementReport(new SrModel.MeasurementReport(h, eq, procedure, library, groups,
                        disclaimer, predecessors, predecessors.isEmpty() ? null : supersedes(run, predecessors.size(), result)));
            } catch (DicomObjectException e) {
                throw new ReportException(e.getMessage(), e);
            }
            objects.add(new ReportSet.DicomObject("SR", DicomObjectWriter.COMPREHENSIVE_3D_SR, srUid, srSeries, sr));
            fhirRuns.add(new FhirBundleBuilder.RunOutputs(run.getModelId(), run.getModelVersion(), run.getDiagnostic(),
                    deviceUid, srUid, fhirFindings, new ArrayList<>(), !predecessors.isEmpty()));
        }
        // the explanation objects' inputs, decoded now: a message whose pictures cannot be made is refused before its
        // SRs leave (delivery sends them ahead of the pictures), and each image is decoded once, not once per finding
        List<Planned> plans = List.copyOf(planned.values());
        Map<String, byte[]> grays = new java.util.HashMap<>();
        List<Inputs> inputs = new ArrayList<>(plans.size());
        // a preview's too (its guided maps aside, which follow): bad content stops its SRs as it would the full result's
        for (Planned p : plans) {
            ImageResult img = p.candidate().image();
            Finding f = p.candidate().finding();
            byte[] gray = grays.get(img.getSopInstanceUid());
            if (gray == null) {
                gray = WorkingImages.toGray8(img.getImage());
                grays.put(img.getSopInstanceUid(), gray);
            }
            int w = img.getImage().getWidth();
            int h = img.getImage().getHeight();
            inputs.add(new Inputs(gray, cam(img, f), f.getGuided() == null ? null : GuidedMaps.decode(f.getGuided(), w, h)));
        }
        return new Staged(result, supersession, runs, procedure, plans, inputs, List.copyOf(objects), fhirRuns, date, time);
    }

    /**
     * A result whose SRs are written and whose explanation objects, rejection note and FHIR bundle are not yet:
     * see {@link #stage}. Not thread-safe; {@link #complete} renders once and then returns the same set.
     */
    public final class Staged {
        private final StudyResult result;
        private final Supersession supersession;
        private final Map<RunKey, RunGroup> runs;
        private final Coded procedure;
        private final List<Planned> plans;
        private final List<Inputs> inputs;
        private final List<ReportSet.DicomObject> srs;
        private final List<FhirBundleBuilder.RunOutputs> fhirRuns;
        private final String date;
        private final String time;
        private ReportSet complete;

        private Staged(StudyResult result, Supersession supersession, Map<RunKey, RunGroup> runs, Coded procedure,
                       List<Planned> plans, List<Inputs> inputs, List<ReportSet.DicomObject> srs,
                       List<FhirBundleBuilder.RunOutputs> fhirRuns, String date, String time) {
            this.result = result;
            this.supersession = supersession;
            this.runs = runs;
            this.procedure = procedure;
            this.plans = plans;
            this.inputs = inputs;
            this.srs = srs;
            this.fhirRuns = fhirRuns;
            this.date = date;
            this.time = time;
        }

        /** One SR per model run, as {@link #complete} will list them first: byte-identical. */
        public List<ReportSet.DicomObject> srs() {
            return srs;
        }

        /** The SRs alone as a set (no FHIR bundle), for a destination that takes them ahead of the rest. */
        public ReportSet srsOnly() {
            return new ReportSet(result.getStudy().getStudyInstanceUid(), result.getJobId(), srs, null);
        }

        /**
         * Everything {@link #build(StudyResult, Supersession)} makes: the SRs, then the explanation objects.
         *
         * @throws ReportException for a preview result (StudyResult.preview): its guided maps are in the full result
         */
        public ReportSet complete() throws ReportException {
            if (result.getPreview()) {
                throw new ReportException("a preview result makes SRs only; its pictures come from the full result");
            }
            if (complete == null) {
                complete = render();
            }
            return complete;
        }

        private ReportSet render() throws ReportException {
            StudyInfo study = result.getStudy();
            String studyUid = study.getStudyInstanceUid();
            List<ReportSet.DicomObject> objects = new ArrayList<>(srs);

            // Each finding's explanation objects are rendered independently (their UIDs and instance numbers were fixed
            // by stage), so they render in parallel: delivery does this on the critical path of the pictures and the
            // FHIR bundle, while the worker that scored the study is idle. Objects and Media keep the order of the
            // sequential loop.
            int[] scNumber = new int[plans.size()];
            int[] pmNumber = new int[plans.size()];
            for (int k = 0, sc = 0, pm = 0; k < plans.size(); k++) {
                scNumber[k] = ++sc;
                sc += plans.get(k).guidedUid() != null ? 1 : 0;
                pmNumber[k] = plans.get(k).pmUid() != null ? ++pm : 0;
            }
            List<Explanation> explained = renderAll(plans, k -> {
                Planned p = plans.get(k);
                ScCandidate c = p.candidate();
                Inputs in = inputs.get(k);
                ScRendered sc = renderSc(study, c, in, p.scUid(), scNumber[k], date, time);
                ScRendered guided = p.guidedUid() == null ? null
                        : renderGuidedSc(study, c, in, p.guidedUid(), scNumber[k] + 1, date, time);
                ReportSet.DicomObject pm = p.pmUid() == null ? null
                        : writeParametricMap(study, c, in, p.pmUid(), pmNumber[k], date, time);
                return new Explanation(sc, guided, pm);
            });
            for (int k = 0; k < plans.size(); k++) {
                ScCandidate c = plans.get(k).candidate();
                Explanation e = explained.get(k);
                objects.add(e.sc().object());
                FhirBundleBuilder.RunOutputs fr = fhirRuns.get(c.runIndex());
                fr.media().add(new FhirBundleBuilder.MediaOutput(e.sc().object().sopInstanceUid(),
                        "Grad-CAM heatmap: " + c.finding().getLabel(), e.sc().png(), c.image().getSopInstanceUid()));
                if (e.guided() != null) {
                    objects.add(e.guided().object());
                    fr.media().add(new FhirBundleBuilder.MediaOutput(e.guided().object().sopInstanceUid(),
                            "Guided Grad-CAM: " + c.finding().getLabel(), e.guided().png(), c.image().getSopInstanceUid()));
                }
                if (e.pm() != null) {
                    objects.add(e.pm());
                }
            }
            String bundle = new FhirBundleBuilder(settings).build(result, procedure, fhirRuns);
            if (settings.rejectSuperseded()) {
                java.util.Set<String> current = new java.util.HashSet<>();
                objects.forEach(o -> current.add(o.sopInstanceUid()));
                List<InstanceRef> rejected = supersession.earlierObjects().stream()
                        .filter(o -> !current.contains(o.sopInstanceUid())).distinct().toList();
                if (!rejected.isEmpty()) {
                    RunGroup g = runs.values().iterator().next();
                    objects.add(rejectionNote(study, g.first, rejected, "superseded by revision " + result.getRevision()
                            + " of the AI results", DerivedUids.uid("ko", studyUid, result.getJobId(),
                            Integer.toString(result.getRevision())), date, time));
                }
            }
            return new ReportSet(studyUid, result.getJobId(), List.copyOf(objects), bundle);
        }
    }

    /** The SR's own words for what it does to its predecessors. */
    private static String supersedes(ModelRun run, int count, StudyResult result) {
        return "This report (revision " + result.getRevision() + ", " + result.getImages().size() + " image(s)) supersedes "
                + (count == 1 ? "the earlier AI report" : "the " + count + " earlier AI reports") + " of this study by "
                + run.getModelId() + ": only this report stands.";
    }

    /** An IHE IOCM rejection note for {@code rejected}, in the study's AI rejection-note series. */
    private ReportSet.DicomObject rejectionNote(StudyInfo study, ModelRun run, List<InstanceRef> rejected, String why,
                                               String sop, String date, String time) throws ReportException {
        String series = DerivedUids.uid("ko-series", study.getStudyInstanceUid());
        SrModel.Header h = header(study, series, settings.seriesNumberBase() + 9, "AI rejection notes", sop, 1, date, time);
        try {
            byte[] ko = DicomObjectWriter.writeKeyObjectSelection(new SrModel.KeyObjectSelection(h,
                    equipment(run, DerivedUids.uid("device", run.getModelId(), run.getModelVersion())),
                    settings.rejectionTitle(), truncate("AI objects " + why, 1024), rejected));
            return new ReportSet.DicomObject("KO", DicomObjectWriter.KEY_OBJECT_SELECTION, sop, series, ko);
        } catch (DicomObjectException e) {
            throw new ReportException(e.getMessage(), e);
        }
    }

    /**
     * The reports that withdraw a study's AI results: per model, an SR in the same AI series that names every
     * SR of that model as predecessor, carries no measurements and states the retraction; with rejection notes
     * on, a note rejecting every object issued; and the last FHIR bundle sent with its DiagnosticReports and
     * Observations turned "entered-in-error" (null when no bundle was sent).
     *
     * @param latest  the latest SR of each model, with the images it covered
     * @param allSrs  every SR issued for the study, by model id
     * @param issued  every object issued for the study (for the rejection note)
     */
    public ReportSet buildRetraction(StudyInfo study, String retractionId, int instanceNumber, List<IssuedSr> latest,
                                     Map<String, List<InstanceRef>> allSrs, List<InstanceRef> issued, String reason,
                                     long atEpochMs, String lastBundleJson) throws ReportException {
        if (study == null || blank(study.getStudyInstanceUid()) || latest.isEmpty()) {
            throw new ReportException("nothing issued to retract");
        }
        String studyUid = study.getStudyInstanceUid();
        Instant at = Instant.ofEpochMilli(atEpochMs);
        String date = DateTimeFormatter.ofPattern("yyyyMMdd").withZone(ZoneOffset.UTC).format(at);
        String time = DateTimeFormatter.ofPattern("HHmmss").withZone(ZoneOffset.UTC).format(at);
        String statement = "RETRACTED on " + DateTimeFormatter.ISO_INSTANT.format(at) + ": " + reason
                + ". The AI results of this study no longer stand; do not use them.";
        List<ReportSet.DicomObject> objects = new ArrayList<>();
        int index = 0;
        ModelRun firstRun = null;
        for (IssuedSr l : latest) {
            ModelRun run = ModelRun.newBuilder().setModelId(l.modelId()).setModelVersion(l.modelVersion()).setDiagnostic(true)
                    .setIntendedUse("").setEngine("retraction").setFindings(List.of()).build();
            firstRun = firstRun == null ? run : firstRun;
            String sop = DerivedUids.uid("sr-retraction", studyUid, l.modelId(), retractionId);
            SrModel.Header h = header(study, l.sr().seriesInstanceUid(), settings.seriesNumberBase() + 10 * index++,
                    srSeriesDescription(l.modelId(), l.diagnostic()), sop, instanceNumber, date, time);
            byte[] sr;
            try {
                sr = DicomObjectWriter.writeMeasurementReport(new SrModel.MeasurementReport(h,
                        equipment(run, DerivedUids.uid("device", l.modelId(), l.modelVersion())),
                        MeasurementReportTemplate.DEFAULT_PROCEDURE, l.images(), List.of(), null,
                        allSrs.getOrDefault(l.modelId(), List.of(l.sr())), statement));
            } catch (DicomObjectException e) {
                throw new ReportException(e.getMessage(), e);
            }
            objects.add(new ReportSet.DicomObject("SR", DicomObjectWriter.COMPREHENSIVE_3D_SR, sop, l.sr().seriesInstanceUid(), sr));
        }
        if (settings.rejectSuperseded() && !issued.isEmpty()) {
            objects.add(rejectionNote(study, firstRun, issued.stream().distinct().toList(), "retracted: " + reason,
                    DerivedUids.uid("ko-retraction", studyUid, retractionId), date, time));
        }
        String bundle = lastBundleJson == null ? null : FhirBundleBuilder.enteredInError(lastBundleJson, statement);
        return new ReportSet(studyUid, "retraction-" + retractionId, List.copyOf(objects), bundle);
    }

    /**
     * The explanation objects of one finding, named before they are made so that the SR can reference them.
     * guidedUid is null without a guided map, pmUid null with Parametric Maps off.
     */
    record Planned(ScCandidate candidate, String scUid, String guidedUid, String pmUid) {
        List<SrModel.Explanation> srReferences() {
            ImageResult img = candidate.image();
            List<SrModel.Explanation> refs = new ArrayList<>();
            if (pmUid != null) {
                refs.add(new SrModel.Explanation(DicomObjectWriter.GRADIENT_WEIGHTED_CLASS_ACTIVATION,
                        new InstanceRef(DicomObjectWriter.PARAMETRIC_MAP, pmUid, pmSeries(img, candidate.run()))));
            }
            refs.add(new SrModel.Explanation(MeasurementGroupTemplate.ILLUSTRATION, new InstanceRef(DicomObjectWriter.SECONDARY_CAPTURE, scUid,
                    scSeries(img, candidate.run()))));
            if (guidedUid != null) {
                refs.add(new SrModel.Explanation(MeasurementGroupTemplate.ILLUSTRATION, new InstanceRef(DicomObjectWriter.SECONDARY_CAPTURE,
                        guidedUid, scSeries(img, candidate.run()))));
            }
            return refs;
        }

        private String studyUid() {
            return candidate.studyUid();
        }

        private String pmSeries(ImageResult img, ModelRun run) {
            return DerivedUids.uid("pm-series", studyUid(), run.getModelId(), run.getModelVersion());
        }

        private String scSeries(ImageResult img, ModelRun run) {
            return DerivedUids.uid("sc-series", studyUid(), run.getModelId(), run.getModelVersion());
        }
    }

    private Planned plan(String studyUid, ScCandidate c) {
        ImageResult img = c.image();
        ModelRun run = c.run();
        Coded code = coded(c.finding().getCode());
        String which = code.scheme() + ":" + code.value();
        String sc = DerivedUids.uid("sc", studyUid, img.getSopInstanceUid(), run.getModelId(), run.getModelVersion(), which);
        // a preview's finding has no guided map yet, but says it follows: the SR names the same objects either way
        String guided = c.finding().getGuided() == null && !c.finding().getGuidedFollows() ? null
                : DerivedUids.uid("guided-sc", studyUid, img.getSopInstanceUid(), run.getModelId(), run.getModelVersion(), which);
        String pm = settings.parametricMaps()
                ? DerivedUids.uid("pm", studyUid, img.getSopInstanceUid(), run.getModelId(), run.getModelVersion(), which)
                : null;
        return new Planned(c, sc, guided, pm);
    }

    private static String candidateKey(ImageResult img, ModelRun run, Finding f) {
        return img.getSopInstanceUid() + "|" + run.getModelId() + "|" + run.getModelVersion() + "|"
                + f.getCode().getScheme() + ":" + f.getCode().getValue();
    }

    /** One finding's explanation objects: its SC, guided SC and Parametric Map (null when not made). */
    private record Explanation(ScRendered sc, ScRendered guided, ReportSet.DicomObject pm) {
    }

    private interface Render {
        Explanation apply(int index) throws ReportException;
    }

    /** Helpers of the thread that builds a report: with it, one renderer per core. Daemon threads, made on demand. */
    private static final java.util.concurrent.ExecutorService RENDERERS = new java.util.concurrent.ThreadPoolExecutor(
            0, Math.max(1, Runtime.getRuntime().availableProcessors() - 1), 30, java.util.concurrent.TimeUnit.SECONDS,
            new java.util.concurrent.LinkedBlockingQueue<>(), r -> {
                Thread t = new Thread(r, "report-renderer");
                t.setDaemon(true);
                return t;
            });

    /**
     * Renders every plan, in plan order: the calling thread and up to cores - 1 helpers take the next plan until
     * none is left (the renderers are CPU-bound and share only read-only inputs); the first failure is thrown.
     */
    private static List<Explanation> renderAll(List<Planned> plans, Render render) throws ReportException {
        int n = plans.size();
        Explanation[] out = new Explanation[n];
        Exception[] failed = new Exception[n];
        java.util.concurrent.atomic.AtomicInteger next = new java.util.concurrent.atomic.AtomicInteger();
        Runnable work = () -> {
            for (int k = next.getAndIncrement(); k < n; k = next.getAndIncrement()) {
                try {
                    out[k] = render.apply(k);
                } catch (ReportException | RuntimeException e) {
                    failed[k] = e;
                }
            }
        };
        List<java.util.concurrent.Future<?>> helpers = new ArrayList<>();
        for (int i = 1; i < Math.min(n, Runtime.getRuntime().availableProcessors()); i++) {
            helpers.add(RENDERERS.submit(work));
        }
        work.run();
        for (java.util.concurrent.Future<?> h : helpers) {
            try {
                h.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new ReportException("interrupted while rendering", e);
            } catch (java.util.concurrent.ExecutionException e) {
                throw new ReportException("renderer failed: " + e.getCause(), e.getCause());
            }
        }
        for (Exception e : failed) {
            if (e instanceof ReportException re) {
                throw re;
            }
            if (e instanceof RuntimeException re) {
                throw re;
            }
        }
        return java.util.Arrays.asList(out);
    }

    record ScRendered(ReportSet.DicomObject object, byte[] png) {
    }

    /** The lines burned into every picture of a finding; {@code method} names the explanation shown. */
    private static List<String> bannerLines(ModelRun run, Finding f, String method) {
        List<String> lines = new ArrayList<>();
        lines.add(f.getLabel() + (f.getPositive() ? " (positive)" : " (negative)"));
        lines.add(String.format(Locale.ROOT, "p = %.3f  threshold = %.3f", f.getProbability(), f.getThreshold()));
        lines.add("Model " + run.getModelId() + " " + run.getModelVersion() + " - " + method);
        if (!run.getDiagnostic()) {
            lines.add(NOT_FOR_DIAGNOSTIC_USE);
        }
        return lines;
    }

    /** The heatmap grid of a finding's activation over its image (checked against the image: report CamMaps). */
    private static CamMaps.Grid cam(ImageResult img, Finding f) throws ReportException {
        try {
            return CamMaps.render(f.getActivation(), img.getImage().getWidth(), img.getImage().getHeight());
        } catch (ReportException e) {
            throw new ReportException(f.getLabel() + ": " + e.getMessage(), e);
        }
    }

    /**
     * What one finding's explanation objects are drawn from, decoded and checked by {@link #stage}: the working
     * image in 8-bit grey, the Grad-CAM on its grid, the guided Grad-CAM on the model-input grid (null without one).
     */
    private record Inputs(byte[] gray, CamMaps.Grid cam, float[] guided) {
    }

    private ScRendered renderSc(StudyInfo study, ScCandidate c, Inputs in, String sop, int instanceNumber, String date,
                                String time) throws ReportException {
        ImageResult img = c.image();
        ModelRun run = c.run();
        Finding f = c.finding();
        String studyUid = study.getStudyInstanceUid();
        byte[] gray = in.gray();
        int w = img.getImage().getWidth();
        int h = img.getImage().getHeight();
        CamMaps.Grid cam = in.cam();
        BufferedImage rendered = HeatmapRenderer.render(gray, w, h, cam.values(), cam.width(), cam.height(),
                bannerLines(run, f, "Grad-CAM"), settings.sideBySide());
        String series = DerivedUids.uid("sc-series", studyUid, run.getModelId(), run.getModelVersion());
        SrModel.Header header = header(study, series, settings.seriesNumberBase() + 10 * c.runIndex() + 1,
                seriesDescription("AI heatmap", run), sop, instanceNumber, date, time);
        String derivation = "Grad-CAM of " + f.getLabel() + " by " + run.getModelId() + " " + run.getModelVersion()
                + " overlaid (viridis, opacity rising with activation, none below " + HeatmapRenderer.FLOOR + ") on the source image"
                + (settings.sideBySide() ? ", beside the original" : "");
        byte[] part10;
        try {
            part10 = DicomObjectWriter.writeSecondaryCapture(new SrModel.SecondaryCapture(header,
                    equipment(run, DerivedUids.uid("device", run.getModelId(), run.getModelVersion())),
                    new InstanceRef(img.getSopClassUid(), img.getSopInstanceUid(), img.getSeriesInstanceUid()),
                    rendered.getWidth(), rendered.getHeight(), 3, HeatmapRenderer.toRgb(rendered), truncate(derivation, 1024)));
        } catch (DicomObjectException e) {
            throw new ReportException(e.getMessage(), e);
        }
        return new ScRendered(new ReportSet.DicomObject("SC", DicomObjectWriter.SECONDARY_CAPTURE, sop, series, part10), png(rendered));
    }

    /** The SC's picture as PNG, for the FHIR Media that shows it outside a DICOM viewer. */
    private static byte[] png(BufferedImage rendered) throws ReportException {
        ByteArrayOutputStream png = new ByteArrayOutputStream();
        // in memory: ImageIO.write to a stream caches through a temporary file by default (create, write, seek,
        // delete per image), which took about half of the encoding time
        javax.imageio.ImageWriter writer = ImageIO.getImageWritersByFormatName("png").next();
        try (javax.imageio.stream.ImageOutputStream out = new javax.imageio.stream.MemoryCacheImageOutputStream(png)) {
            writer.setOutput(out);
            writer.write(rendered);
        } catch (IOException e) {
            throw new ReportException("cannot encode heatmap PNG", e);
        } finally {
            writer.dispose();
        }
        return png.toByteArray();
    }

    /** Guided Grad-CAM in grey at the working resolution, in the heatmap series beside the colour Grad-CAM. */
    private ScRendered renderGuidedSc(StudyInfo study, ScCandidate c, Inputs in, String sop, int instanceNumber,
                                      String date, String time) throws ReportException {
        ImageResult img = c.image();
        ModelRun run = c.run();
        Finding f = c.finding();
        int w = img.getImage().getWidth();
        int h = img.getImage().getHeight();
        float[] guided = GuidedMaps.onGrid(f.getGuided(), in.guided(), w, h, w, h);
        BufferedImage rendered = HeatmapRenderer.renderGuided(guided, w, h, bannerLines(run, f, "guided Grad-CAM"));
        String series = DerivedUids.uid("sc-series", study.getStudyInstanceUid(), run.getModelId(), run.getModelVersion());
        SrModel.Header header = header(study, series, settings.seriesNumberBase() + 10 * c.runIndex() + 1,
                seriesDescription("AI heatmap", run), sop, instanceNumber, date, time);
        String derivation = "Guided Grad-CAM of " + f.getLabel() + " by " + run.getModelId() + " " + run.getModelVersion()
                + " (guided backpropagation x Grad-CAM, Selvaraju et al. 2017); mid-grey = 0, brighter = for the finding";
        try {
            byte[] part10 = DicomObjectWriter.writeSecondaryCapture(new SrModel.SecondaryCapture(header,
                    equipment(run, DerivedUids.uid("device", run.getModelId(), run.getModelVersion())),
                    new InstanceRef(img.getSopClassUid(), img.getSopInstanceUid(), img.getSeriesInstanceUid()),
                    w, h, 1, HeatmapRenderer.toGray(rendered), truncate(derivation, 1024)));
            return new ScRendered(new ReportSet.DicomObject("SC", DicomObjectWriter.SECONDARY_CAPTURE, sop, series, part10),
                    png(rendered));
        } catch (DicomObjectException e) {
            throw new ReportException(e.getMessage(), e);
        }
    }

    /**
     * The Parametric Map of a finding on the Grad-CAM's own grid, which spans the whole source image:
     * frame 1 the Grad-CAM (0..1), frame 2 the guided Grad-CAM (-1..1 of its largest magnitude) when present.
     */
    private ReportSet.DicomObject writeParametricMap(StudyInfo study, ScCandidate c, Inputs in, String sop, int instanceNumber,
                                                     String date, String time) throws ReportException {
        ImageResult img = c.image();
        ModelRun run = c.run();
        Finding f = c.finding();
        CamMaps.Grid cam = in.cam();
        byte[] camValues = cam.values();
        int gw = cam.width();
        int gh = cam.height();
        float[] gradCam = new float[camValues.length];
        for (int i = 0; i < gradCam.length; i++) {
            gradCam[i] = (camValues[i] & 0xff) / 255f;
        }
        List<SrModel.MapFrame> frames = new ArrayList<>();
        frames.add(new SrModel.MapFrame(DicomObjectWriter.GRADIENT_WEIGHTED_CLASS_ACTIVATION, MeasurementGroupTemplate.NO_UNITS, gradCam, "GRADCAM",
                truncate("Grad-CAM of " + f.getLabel() + ", min-max normalised", 64)));
        String method = "Grad-CAM";
        if (f.getGuided() != null) {
            int w = img.getImage().getWidth();
            int h = img.getImage().getHeight();
            float[] guided = GuidedMaps.onGrid(f.getGuided(), in.guided(), w, h, gw, gh);
            // guided Grad-CAM is a pixel-level saliency map: CID 217 has no closer concept than Saliency
            frames.add(new SrModel.MapFrame(DicomObjectWriter.SALIENCY, MeasurementGroupTemplate.NO_UNITS, guided, "GUIDEDGRADCAM",
                    truncate("Guided Grad-CAM of " + f.getLabel() + ", / max |value|", 64)));
            method = "Grad-CAM and guided Grad-CAM";
        }
        String series = DerivedUids.uid("pm-series", study.getStudyInstanceUid(), run.getModelId(), run.getModelVersion());
        SrModel.Header header = header(study, series, settings.seriesNumberBase() + 10 * c.runIndex() + 2,
                seriesDescription("AI map", run), sop, instanceNumber, date, time);
        String derivation = method + " of " + f.getLabel() + " by " + run.getModelId() + " " + run.getModelVersion()
                + ", sampled on a " + gw + "x" + gh + " grid spanning the whole source image (a subsampling of its pixel grid);"
                + " nominal geometry: the detector plane, one working-image pixel as unit, not for measurement"
                + (run.getDiagnostic() ? "" : "; " + NOT_FOR_DIAGNOSTIC_USE);
        try {
            byte[] part10 = DicomObjectWriter.writeParametricMap(new SrModel.ParametricMap(header,
                    equipment(run, DerivedUids.uid("device", run.getModelId(), run.getModelVersion())),
                    new InstanceRef(img.getSopClassUid(), img.getSopInstanceUid(), img.getSeriesInstanceUid()),
                    gw, gh, frames, DicomObjectWriter.GRADIENT_WEIGHTED_CLASS_ACTIVATION, "GRADCAM",
                    truncate(method + " of " + f.getLabel(), 64), truncate(derivation, 1024), run.getDiagnostic(),
                    DerivedUids.uid("frame-of-reference", img.getSopInstanceUid()),
                    new double[]{(double) img.getImage().getHeight() / gh, (double) img.getImage().getWidth() / gw}));
            return new ReportSet.DicomObject("PM", DicomObjectWriter.PARAMETRIC_MAP, sop, series, part10);
        } catch (DicomObjectException e) {
            throw new ReportException(e.getMessage(), e);
        }
    }

    private static Map<RunKey, RunGroup> groupRuns(StudyResult result) throws ReportException {
        Map<RunKey, RunGroup> runs = new LinkedHashMap<>();
        for (ImageResult img : result.getImages()) {
            if (blank(img.getSopInstanceUid()) || blank(img.getSopClassUid()) || blank(img.getSeriesInstanceUid())) {
                throw new ReportException("image result without SOP Instance, SOP Class or Series UID");
            }
            for (ModelRun run : img.getRuns()) {
                RunKey key = new RunKey(run.getModelId(), run.getModelVersion());
                RunGroup g = runs.computeIfAbsent(key, k -> new RunGroup(k, runs.size()));
                if (g.first == null) {
                    g.first = run;
                }
                g.images.add(img);
                g.findingsPerImage.add(run.getFindings().toArray(new Finding[0]));
            }
        }
        if (runs.isEmpty()) {
            throw new ReportException("result has no model runs");
        }
        return runs;
    }

    private SrModel.Equipment equipment(ModelRun run, String deviceUid) {
        return new SrModel.Equipment(settings.manufacturer(), truncate(run.getModelId(), 64),
                truncate(run.getModelVersion() + " (" + SOFTWARE_VERSION + ", " + run.getEngine() + ")", 64),
                deviceUid, truncate(run.getModelId(), 64));
    }

    private static SrModel.Header header(StudyInfo s, String series, int seriesNumber, String seriesDescription,
                                         String sop, int instanceNumber, String date, String time) {
        return new SrModel.Header(s.getPatientName(), s.getPatientId(), s.getIssuerOfPatientId(), s.getPatientBirthDate(),
                s.getPatientSex(), s.getStudyInstanceUid(), s.getStudyId(), s.getStudyDate(), s.getStudyTime(),
                s.getAccessionNumber(), s.getReferringPhysicianName(), s.getStudyDescription(),
                series, seriesNumber, seriesDescription, sop, instanceNumber, date, time);
    }

    /** LO is 64 characters; the disclaimer is kept whole and the model name shortened instead. */
    static String seriesDescription(String what, ModelRun run) {
        String suffix = run.getDiagnostic() ? "" : " - NOT FOR DIAGNOSTIC USE";
        String head = what + " " + run.getModelId() + " " + run.getModelVersion();
        return truncate(head, 64 - suffix.length()) + suffix;
    }

    static Coded coded(Code c) {
        return new Coded(c.getValue(), c.getScheme(), c.getMeaning());
    }

    private static double clamp01(float v) {
        return Float.isNaN(v) ? 0 : Math.max(0, Math.min(1, v));
    }

    static String truncate(String s, int n) {
        return s == null || s.length() <= n ? s : s.substring(0, n);
    }

    static boolean blank(String s) {
        return s == null || s.isBlank();
    }
}
