package org.cxrgateway.deploy;

import com.fasterxml.jackson.databind.JsonNode;
import org.cxrgateway.deploy.Kustomize.Doc;
import org.cxrgateway.deploy.Kustomize.Result;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

import static org.cxrgateway.deploy.Manifests.containers;
import static org.cxrgateway.deploy.Manifests.get;
import static org.cxrgateway.deploy.Manifests.list;
import static org.cxrgateway.deploy.Manifests.str;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Validates deploy/: every YAML parses, each kustomization renders (base and overlays, see {@link Kustomize}),
 * every rendered object of a built-in or KEDA/Prometheus-Operator kind passes its JSON schema (kubernetes-models,
 * offline), and the cross-object rules in {@link ManifestRules} hold.
 */
class ManifestValidationTest {

    static final List<String> KUSTOMIZATIONS = List.of("deploy/base", "deploy/overlays/cpu-single",
            "deploy/overlays/gpu-scaleout");
    /** apiVersions whose schemas lint.mjs bundles; everything else is checked by ManifestRules only. */
    static final Set<String> SCHEMA_CHECKED = Set.of("v1", "apps/v1", "policy/v1", "networking.k8s.io/v1",
            "keda.sh/v1alpha1", "monitoring.coreos.com/v1");

    static Path root;
    static final Map<String, Result> rendered = new LinkedHashMap<>();

    @BeforeAll
    static void render() {
        root = NodeLint.repoRoot();
        for (String k : KUSTOMIZATIONS) {
            rendered.put(k, Kustomize.render(root.resolve(k), root));
        }
    }

    private static Doc doc(String kustomization, String kind, String name) {
        return rendered.get(kustomization).docs().stream().filter(d -> d.kind().equals(kind) && d.name().equals(name))
                .findFirst().orElseThrow(() -> new AssertionError(kind + "/" + name + " missing in " + kustomization));
    }

    @Test
    void everyYamlFileParsesAndIsUsed() throws Exception {
        List<Path> files;
        try (Stream<Path> s = Files.walk(root.resolve("deploy"))) {
            files = s.filter(p -> p.toString().endsWith(".yaml") || p.toString().endsWith(".yml")).sorted().toList();
        }
        assertTrue(files.size() >= 10, "deploy/ YAML files: " + files);
        Set<String> used = new HashSet<>();
        rendered.values().forEach(r -> r.docs().forEach(d -> used.add(d.source())));
        for (Path f : files) {
            String rel = root.relativize(f).toString();
            List<Object> docs = Kustomize.load(f);
            assertTrue(!docs.isEmpty(), rel + " is empty");
            for (Object o : docs) {
                assertTrue(str(o, "apiVersion") != null && str(o, "kind") != null, rel + ": no apiVersion/kind");
                if (!"Kustomization".equals(str(o, "kind"))) {
                    assertTrue(str(o, "metadata", "name") != null, rel + ": no metadata.name");
                }
            }
            if (!f.getFileName().toString().equals("kustomization.yaml")) {
                assertTrue(used.contains(rel), rel + " is listed in no kustomization's resources");
            }
        }
    }

    @Test
    void kustomizationsRenderAndKeepTheRules() {
        for (var e : rendered.entrySet()) {
            assertEquals(List.of(), e.getValue().problems(), e.getKey() + " does not render");
            assertEquals(List.of(), ManifestRules.problems(e.getValue().docs()), e.getKey());
        }
    }

    @Test
    void renderedObjectsPassTheirSchemas() throws Exception {
        List<Map<String, Object>> objects = new ArrayList<>();
        for (var e : rendered.entrySet()) {
            int i = 0;
            for (Doc d : e.getValue().docs()) {
                objects.add(Map.of("file", e.getKey() + " " + d.source(), "index", i++, "object", d.object()));
            }
        }
        JsonNode answer = NodeLint.run(Map.of("dockerfiles", Map.of(), "objects", objects)).get("objects");
        List<String> errors = new ArrayList<>();
        int validated = 0;
        for (int i = 0; i < objects.size(); i++) {
            JsonNode r = answer.get(i);
            @SuppressWarnings("unchecked")
            Map<String, Object> o = (Map<String, Object>) objects.get(i).get("object");
            boolean expected = SCHEMA_CHECKED.contains(String.valueOf(o.get("apiVersion")));
            assertEquals(expected, r.get("validated").asBoolean(),
                    "schema lookup for " + o.get("apiVersion") + " " + o.get("kind"));
            if (r.get("validated").asBoolean()) {
                validated++;
            }
            r.get("errors").forEach(err -> errors.add(r.get("file").asText() + " " + o.get("kind") + ": " + err.asText()));
        }
        assertEquals(List.of(), errors);
        assertTrue(validated >= 3 * 12, "schema-validated objects: " + validated);
    }

    @Test
    void theSchemaValidatorRejectsAWrongType() throws Exception {
        Map<String, Object> bad = Kustomize.render(root.resolve("deploy/base"), root).docs().stream()
                .filter(d -> d.kind().equals("Deployment")).findFirst().orElseThrow().object();
        @SuppressWarnings("unchecked")
        Map<String, Object> port = (Map<String, Object>) list(containers(bad).get(0).get("ports")).get(0);
        port.put("containerPort", "eighty");
        JsonNode r = NodeLint.run(Map.of("dockerfiles", Map.of(), "objects",
                List.of(Map.of("file", "mutated", "index", 0, "object", bad)))).get("objects").get(0);
        assertTrue(r.get("errors").toString().contains("containerPort"), r.toString());
    }

    @Test
    void listenerIsAStatefulSetWithSpoolAndDicomService() {
        Doc sts = doc("deploy/base", "StatefulSet", "cxr-listener");
        assertEquals("spool", str(list(sts.object(), "spec", "volumeClaimTemplates").get(0), "metadata", "name"));
        var c = containers(sts.object()).get(0);
        assertTrue(list(c.get("ports")).stream().anyMatch(p -> "11112".equals(str(p, "containerPort"))));
        assertEquals("/data", list(c.get("volumeMounts")).stream().filter(m -> "spool".equals(str(m, "name")))
                .map(m -> str(m, "mountPath")).findFirst().orElse(null));
        Doc svc = doc("deploy/base", "Service", "cxr-listener");
        Object port = list(svc.object(), "spec", "ports").get(0);
        assertEquals("11112", str(port, "port"));
        assertEquals("TCP", str(port, "protocol"));
        assertEquals("CXRGATEWAY", str(doc("deploy/base", "ConfigMap", "cxr-gateway-config").object(),
                "data", "CXR_LISTENER_AE_TITLE"));
    }

    @Test
    void workersGetAGpuExceptInTheCpuOverlay() {
        for (String k : List.of("deploy/base", "deploy/overlays/gpu-scaleout")) {
            var c = containers(doc(k, "Deployment", "cxr-worker").object()).get(0);
            assertEquals("1", str(c, "resources", "limits", "nvidia.com/gpu"), k);
            assertEquals("worker", Manifests.env(c, "CXR_ROLES"));
            assertEquals("tensorrt", Manifests.env(c, "CXR_INFERENCE_ENGINE"));
        }
        assertEquals("registry.example.org/cxr/cxr-gateway-gpu:0.1.0",
                containers(doc("deploy/overlays/gpu-scaleout", "Deployment", "cxr-worker").object()).get(0).get("image"));
        var cpu = containers(doc("deploy/overlays/cpu-single", "Deployment", "cxr-worker").object()).get(0);
        assertNull(get(cpu, "resources", "limits", "nvidia.com/gpu"));
        assertEquals("cpu", Manifests.env(cpu, "CXR_INFERENCE_ENGINE"));
        assertEquals("registry.example.org/cxr/cxr-gateway:0.1.0", cpu.get("image"));
        assertEquals("1", str(doc("deploy/overlays/cpu-single", "KafkaTopic", "cxr-study-jobs").object(),
                "spec", "replicas"));
        assertEquals("cxr-gateway", str(doc("deploy/overlays/cpu-single", "Deployment", "cxr-worker").object(),
                "metadata", "namespace"));
    }

    @Test
    void networkPolicyAdmitsOnlyPacsAndMonitoring() {
        Doc np = doc("deploy/base", "NetworkPolicy", "cxr-listener");
        List<Object> ingress = list(np.object(), "spec", "ingress");
        assertEquals(2, ingress.size());
        Object dicom = ingress.stream().filter(r -> "11112".equals(str(list(r, "ports").get(0), "port")))
                .findFirst().orElseThrow();
        assertTrue(str(list(dicom, "from").get(0), "ipBlock", "cidr") != null, "DICOM only from the PACS CIDR");
        Object http = ingress.stream().filter(r -> "8080".equals(str(list(r, "ports").get(0), "port")))
                .findFirst().orElseThrow();
        assertEquals("monitoring", str(list(http, "from").get(0), "namespaceSelector", "matchLabels",
                "kubernetes.io/metadata.name"));
    }

    /** The rules are not vacuous: breaking each one in a fresh render of base is reported. */
    @Test
    @SuppressWarnings("unchecked")
    void brokenManifestsAreReported() {
        List<Doc> docs = Kustomize.render(root.resolve("deploy/base"), root).docs();
        for (Doc d : docs) {
            Map<String, Object> spec = (Map<String, Object>) d.object().get("spec");
            switch (d.kind() + "/" + d.name()) {
                case "ScaledObject/cxr-worker" -> ((Map<String, Object>) spec.get("scaleTargetRef")).put("name", "cxr-wrker");
                case "KafkaTopic/cxr-study-results" ->
                        ((Map<String, Object>) Manifests.get(d.object(), "metadata", "labels")).put("strimzi.io/cluster", "other");
                case "KafkaTopic/cxr-dead-letters" -> ((Map<String, Object>) spec.get("config")).remove("max.message.bytes");
                case "StatefulSet/cxr-listener" -> spec.remove("volumeClaimTemplates");
                case "Deployment/cxr-delivery" -> {
                    containers(d.object()).get(0).remove("readinessProbe");
                    ((Map<String, Object>) Manifests.get(spec, "selector", "matchLabels")).put("app.kubernetes.io/name", "x");
                }
                case "Deployment/cxr-worker" ->
                        ((Map<String, Object>) Manifests.get(containers(d.object()).get(0), "resources", "limits")).remove("nvidia.com/gpu");
                default -> { }
            }
        }
        String all = String.join("\n", ManifestRules.problems(docs));
        for (String expected : List.of("scaleTargetRef names no existing Deployment: cxr-wrker",
                "label strimzi.io/cluster=other names no Kafka CR", "max.message.bytes is not 1 MiB",
                "no volumeClaimTemplates", "has no readinessProbe",
                "selector.matchLabels does not match the pod template's labels",
                "uses TensorRT but has no nvidia.com/gpu limit")) {
            assertTrue(all.contains(expected), "expected \"" + expected + "\" among:\n" + all);
        }
    }

    /**
     * Every CXR_* variable that deploy/ or the Dockerfiles set is a real configuration key, in the form
     * SmallRye maps back to it (non-alphanumerics to _, upper case). Keys come from the documented lines of
     * application.properties; named maps (cxr.delivery.pacs.NAME.*, cxr.kafka.client."PROPERTY") match by shape.
     */
    @Test
    void environmentVariablesNameRealConfigKeys() throws Exception {
        List<java.util.regex.Pattern> known = new ArrayList<>();
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("(?m)^#?(cxr\\.[A-Za-z0-9.\\-\"]+)=")
                .matcher(Files.readString(root.resolve("src/main/resources/application.properties")));
        while (m.find()) {
            String key = m.group(1);
            String env;
            if (key.startsWith("cxr.kafka.client.")) {
                env = "CXR_KAFKA_CLIENT__[A-Z0-9_]+_";
            } else if (key.startsWith("cxr.delivery.pacs.")) {
                env = "CXR_DELIVERY_PACS_[A-Z0-9]+_" + key.substring(key.indexOf('.', "cxr.delivery.pacs.".length()) + 1)
                        .replaceAll("[^A-Za-z0-9]", "_").toUpperCase(java.util.Locale.ROOT);
            } else {
                env = key.replaceAll("[^A-Za-z0-9]", "_").toUpperCase(java.util.Locale.ROOT);
            }
            known.add(java.util.regex.Pattern.compile(env));
        }
        assertTrue(known.size() > 40, "documented keys found: " + known.size());
        Set<String> used = new HashSet<>();
        for (Result r : rendered.values()) {
            for (Doc d : r.docs()) {
                if (d.kind().equals("ConfigMap")) {
                    used.addAll(Manifests.map(d.object(), "data").keySet());
                }
                if (Manifests.podSpec(d.object()) != null) {
                    for (Map<String, Object> c : containers(d.object())) {
                        for (Object e : list(c, "env")) {
                            used.add(str(e, "name"));
                        }
                    }
                }
            }
        }
        for (String dockerfile : List.of("docker/Dockerfile", "docker/Dockerfile.gpu")) {
            java.util.regex.Matcher env = java.util.regex.Pattern.compile("\\b(CXR_[A-Z0-9_]+)=")
                    .matcher(Files.readString(root.resolve(dockerfile)));
            while (env.find()) {
                used.add(env.group(1));
            }
        }
        List<String> unknown = used.stream().filter(n -> n.startsWith("CXR_"))
                .filter(n -> known.stream().noneMatch(k -> k.matcher(n).matches())).sorted().toList();
        assertTrue(used.contains("CXR_ROLES"), "scan found " + used);
        assertEquals(List.of(), unknown, "environment variables that name no config key");
    }
}
