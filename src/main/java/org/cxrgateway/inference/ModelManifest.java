package org.cxrgateway.inference;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.networknt.schema.JsonSchema;
import com.networknt.schema.JsonSchemaFactory;
import com.networknt.schema.SpecVersion;
import com.networknt.schema.ValidationMessage;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

/** manifest.json of a model package; the JSON Schema is schemas/model/manifest.schema.json. */
// provenance is informative (cxr-model): validated by the schema, not read here
@JsonIgnoreProperties(value = {"provenance"}, ignoreUnknown = false)
public record ModelManifest(int formatVersion, String id, String version, String title, String architecture,
                            String intendedUse, boolean diagnostic, String model, String activation,
                            List<Label> labels, List<String> reportedLabels, Input input,
                            Preprocessing preprocessing, Outputs outputs, Head head, Weights weights, Guided guided,
                            Int8 int8) {

    public record Code(String value, String scheme, String meaning) {
    }

    public record Label(String name, Code code, double threshold) {
    }

    public record Input(String name, int channels, int size, String layout) {
    }

    /**
     * formatVersion 1: crop + normalisation (Preprocessor documents their meaning); formatVersion 2:
     * upstream + ordered steps, the spec of src/main/python/cxr_preprocessing.py.
     */
    public record Preprocessing(String crop, String normalisation, String upstream, List<Step> steps) {
    }

    /** One formatVersion 2 preprocessing step; which fields apply depends on op (see the schema). */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record Step(String op, String to, Integer size, Integer width, Integer height, String filter,
                       Double fraction, Boolean square, String offset, Integer count, String kind,
                       List<Double> mean, List<Double> std) {
    }

    public record Outputs(String logits, String features, int featureChannels, int featureSize) {
    }

    /** kind linear (default): weight/bias or file; kind mlp: layers over pool avg|flatten (schema: head). */
    public record Head(String source, String weight, String bias, String file, String kind, String pool, List<Layer> layers) {

        public boolean mlp() {
            return "mlp".equals(kind);
        }

        public boolean flatten() {
            return "flatten".equals(pool);
        }
    }

    /** One layer of an mlp head: initializer names, weight [out, in], and the activation after it (relu or none). */
    public record Layer(String weight, String bias, String activation) {
    }

    public record Weights(String recipe, String file) {
    }

    /**
     * The optional INT8 variant (schema: int8); null when the package has none. weightBits above 7 needs a CPU with
     * int32 dot products (Int8Kernels); decisionMargin, where present, is the decision guard's margin measured for this
     * variant (DecisionGuard.margin); floatConvs (the convolutions left float), calibration and decisionMarginBasis are
     * informative.
     */
    public record Int8(String file, String scheme, Integer weightBits, List<String> floatConvs, Calibration calibration,
                       Double decisionMargin, Map<String, Object> decisionMarginBasis) {
    }

    public record Calibration(String method, Double percentile, Integer images) {
    }

    /** The optional guided-backpropagation graph (schema: guided); null when the package has none. */
    public record Guided(String file, GuidedInputs inputs, GuidedOutputs outputs, int classes, String rule) {
    }

    public record GuidedInputs(String image, String classes) {
    }

    public record GuidedOutputs(String gradient, String logits) {
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    private static volatile JsonSchema schema;

    private static JsonSchema schema() {
        if (schema == null) {
            try (InputStream in = ModelManifest.class.getResourceAsStream("/schemas/model/manifest.schema.json")) {
                if (in == null) {
                    throw new IllegalStateException("schemas/model/manifest.schema.json is not on the classpath");
                }
                schema = JsonSchemaFactory.getInstance(SpecVersion.VersionFlag.V202012).getSchema(in);
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }
        return schema;
    }

    /** Parses and validates: schema first (errors name the JSON path), then the rules a schema cannot say. */
    public static ModelManifest parse(byte[] json, String where) {
        JsonNode node;
        try {
            node = JSON.readTree(json);
        } catch (IOException e) {
            throw new ModelPackageException(where + ": manifest.json is not JSON: " + e.getMessage());
        }
        Set<ValidationMessage> errors = schema().validate(node);
        if (!errors.isEmpty()) {
            throw new ModelPackageException(where + ": manifest.json is invalid: " + errors.stream()
                    .map(ValidationMessage::getMessage).sorted().collect(Collectors.joining("; ")));
        }
        ModelManifest m;
        try {
            m = JSON.treeToValue(node, ModelManifest.class);
        } catch (IOException e) {
            throw new ModelPackageException(where + ": manifest.json: " + e.getMessage());
        }
        m.check(where);
        return m;
    }

    private void check(String where) {
        Set<String> names = new HashSet<>();
        for (Label l : labels) {
            if (!names.add(l.name())) {
                throw new ModelPackageException(where + ": labels: duplicate label name '" + l.name() + "'");
            }
        }
        if (reportedLabels != null) {
            for (String r : reportedLabels) {
                if (!names.contains(r)) {
                    throw new ModelPackageException(where + ": reportedLabels: '" + r + "' is not one of the labels");
                }
            }
        }
        if (formatVersion == 1) {
            boolean xrv = "xrv".equals(preprocessing.normalisation());
            if (xrv && input.channels() != 1) {
                throw new ModelPackageException(where + ": input.channels must be 1 for preprocessing.normalisation xrv, was " + input.channels());
            }
            if (!xrv && input.channels() != 3) {
                throw new ModelPackageException(where + ": input.channels must be 3 for preprocessing.normalisation imagenet, was " + input.channels());
            }
        } else {
            try {
                Preprocessor.checkSteps(preprocessing.steps(), input.channels(), input.size());
            } catch (IllegalArgumentException e) {
                throw new ModelPackageException(where + ": preprocessing: " + e.getMessage());
            }
        }
        if (guided != null && guided.classes() != labels.size()) {
            throw new ModelPackageException(where + ": guided.classes is " + guided.classes() + " but the model has " + labels.size() + " labels");
        }
        if (guided != null && !guided.inputs().image().equals(input.name())) {
            throw new ModelPackageException(where + ": guided.inputs.image '" + guided.inputs().image() + "' differs from input.name '" + input.name() + "'");
        }
        if ("softmax".equals(activation) && labels.size() < 2) {
            throw new ModelPackageException(where + ": activation softmax needs at least 2 labels");
        }
    }

    /** The model file name, default model.onnx. */
    public String modelFile() {
        return model == null ? "model.onnx" : model;
    }

    /** Indices of the labels that become findings, in label order. */
    public int[] reportedIndices() {
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < labels.size(); i++) {
            if (reportedLabels == null || reportedLabels.contains(labels.get(i).name())) {
                out.add(i);
            }
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }
}
