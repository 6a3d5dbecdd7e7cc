package org.cxrgateway.deploy;

import org.cxrgateway.deploy.Kustomize.Doc;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.function.Predicate;

import static org.cxrgateway.deploy.Manifests.containers;
import static org.cxrgateway.deploy.Manifests.get;
import static org.cxrgateway.deploy.Manifests.list;
import static org.cxrgateway.deploy.Manifests.map;
import static org.cxrgateway.deploy.Manifests.number;
import static org.cxrgateway.deploy.Manifests.podSpec;
import static org.cxrgateway.deploy.Manifests.str;

/**
 * Cross-object rules for one rendered set of manifests (a kustomization's output): what the schemas cannot
 * see, such as a ScaledObject naming a Deployment that does not exist or a topic bound to another cluster.
 */
final class ManifestRules {

    static final long ONE_MIB = 1024L * 1024;
    static final List<String> TOPICS = List.of("cxr.study.jobs", "cxr.study.results", "cxr.dead-letters");

    private final List<Doc> docs;
    private final List<String> problems = new ArrayList<>();

    private ManifestRules(List<Doc> docs) {
        this.docs = docs;
    }

    static List<String> problems(List<Doc> docs) {
        ManifestRules r = new ManifestRules(docs);
        r.check();
        return r.problems;
    }

    private List<Doc> of(String kind) {
        return docs.stream().filter(d -> d.kind().equals(kind)).toList();
    }

    private Doc find(String kind, String name) {
        return docs.stream().filter(d -> d.kind().equals(kind) && d.name().equals(name)).findFirst().orElse(null);
    }

    private void problem(Doc d, String what) {
        problems.add(d.source() + " " + d.kind() + "/" + d.name() + ": " + what);
    }

    private static boolean subset(Map<String, Object> selector, Map<String, Object> labels) {
        return !selector.isEmpty() && selector.entrySet().stream()
                .allMatch(e -> Objects.equals(String.valueOf(e.getValue()), String.valueOf(labels.get(e.getKey()))));
    }

    private void check() {
        Set<String> seen = new HashSet<>();
        for (Doc d : docs) {
            Map<String, Object> o = d.object();
            if (o.get("apiVersion") == null || o.get("kind") == null || str(o, "metadata", "name") == null) {
                problems.add(d.source() + ": a document lacks apiVersion, kind or metadata.name: " + o.keySet());
                continue;
            }
            if (!seen.add(d.kind() + "/" + d.name())) {
                problem(d, "defined twice");
            }
        }
        of("StatefulSet").forEach(this::statefulSet);
        of("Deployment").forEach(d -> {
            if (!subset(map(d.object(), "spec", "selector", "matchLabels"),
                    map(d.object(), "spec", "template", "metadata", "labels"))) {
                problem(d, "spec.selector.matchLabels does not match the pod template's labels");
            }
        });
        docs.stream().filter(d -> podSpec(d.object()) != null).forEach(this::podTemplate);
        of("Service").forEach(this::service);
        of("ScaledObject").forEach(this::scaledObject);
        of("Kafka").forEach(this::kafka);
        of("KafkaTopic").forEach(this::kafkaTopic);
        of("KafkaUser").forEach(this::strimziCluster);
        of("KafkaNodePool").forEach(this::strimziCluster);
        of("NetworkPolicy").forEach(this::networkPolicy);
        Set<String> topics = new HashSet<>();
        of("KafkaTopic").forEach(t -> topics.add(topicName(t)));
        for (String t : TOPICS) {
            if (!topics.contains(t)) {
                problems.add("no KafkaTopic for " + t);
            }
        }
        workload("StatefulSet", "listener");
        workload("Deployment", "worker");
        workload("Deployment", "delivery");
        if (of("ScaledObject").isEmpty()) {
            problems.add("no KEDA ScaledObject");
        }
        if (of("NetworkPolicy").isEmpty()) {
            problems.add("no NetworkPolicy");
        }
        if (of("Secret").isEmpty()) {
            problems.add("no Secret");
        }
        if (of("ConfigMap").stream().noneMatch(c -> map(c.object(), "data").containsKey("CXR_KAFKA_BOOTSTRAP_SERVERS"))) {
            problems.add("no ConfigMap with CXR_KAFKA_BOOTSTRAP_SERVERS");
        }
    }

    /** Each role runs from exactly one workload whose containers all set CXR_ROLES to it. */
    private void workload(String kind, String role) {
        List<Doc> hits = of(kind).stream().filter(d -> containers(d.object()).stream()
                .anyMatch(c -> role.equals(Manifests.env(c, "CXR_ROLES")))).toList();
        if (hits.size() != 1) {
            problems.add("expected one " + kind + " with CXR_ROLES=" + role + ", found " + hits.size());
        }
    }

    private void statefulSet(Doc d) {
        Map<String, Object> o = d.object();
        String serviceName = str(o, "spec", "serviceName");
        Doc svc = serviceName == null ? null : find("Service", serviceName);
        if (svc == null) {
            problem(d, "spec.serviceName " + serviceName + " names no Service");
        } else if (!"None".equals(str(svc.object(), "spec", "clusterIP"))) {
            problem(d, "governing Service " + serviceName + " is not headless (clusterIP: None)");
        }
        if (!subset(map(o, "spec", "selector", "matchLabels"), map(o, "spec", "template", "metadata", "labels"))) {
            problem(d, "spec.selector.matchLabels does not match the pod template's labels");
        }
        List<Object> claims = list(o, "spec", "volumeClaimTemplates");
        if (claims.isEmpty()) {
            problem(d, "no volumeClaimTemplates (the spool must outlive the pod)");
        }
        for (Object c : claims) {
            if (get(c, "spec", "resources", "requests", "storage") == null) {
                problem(d, "claim " + str(c, "metadata", "name") + " requests no storage");
            }
        }
    }

    private void podTemplate(Doc d) {
        Map<String, Object> spec = podSpec(d.object());
        if (!Boolean.TRUE.equals(get(spec, "securityContext", "runAsNonRoot"))) {
            problem(d, "pod securityContext.runAsNonRoot is not true");
        }
        Set<String> volumes = new HashSet<>();
        list(spec.get("volumes")).forEach(v -> volumes.add(str(v, "name")));
        list(d.object(), "spec", "volumeClaimTemplates").forEach(v -> volumes.add(str(v, "metadata", "name")));
        List<Map<String, Object>> cs = containers(d.object());
        if (cs.isEmpty()) {
            problem(d, "no containers");
        }
        for (Map<String, Object> c : cs) {
            String name = "container " + c.get("name");
            if (c.get("image") == null || String.valueOf(c.get("image")).isBlank()) {
                problem(d, name + " has no image");
            }
            Set<Object> ports = new HashSet<>();
            for (Object p : list(c.get("ports"))) {
                ports.add(str(p, "name"));
                ports.add(String.valueOf(get(p, "containerPort")));
            }
            probe(d, c, "livenessProbe", "/q/health/live", ports);
            probe(d, c, "readinessProbe", "/q/health/ready", ports);
            for (Object m : list(c.get("volumeMounts"))) {
                if (!volumes.contains(str(m, "name"))) {
                    problem(d, name + " mounts undeclared volume " + str(m, "name"));
                }
            }
            for (Object ef : list(c.get("envFrom"))) {
                String cm = str(ef, "configMapRef", "name");
                if (cm != null && find("ConfigMap", cm) == null) {
                    problem(d, name + " envFrom names missing ConfigMap " + cm);
                }
            }
            for (Object e : list(c.get("env"))) {
                String env = str(e, "name");
                if (env == null || !env.matches("[A-Z_][A-Z0-9_]*")) {
                    problem(d, name + " env name " + env + " is not an environment variable name");
                }
                String secret = str(e, "valueFrom", "secretKeyRef", "name");
                if (secret != null) {
                    secretKey(d, secret, str(e, "valueFrom", "secretKeyRef", "key"));
                }
            }
            if (Manifests.env(c, "CXR_ROLES") == null) {
                problem(d, name + " does not set CXR_ROLES");
            }
            if ("worker".equals(Manifests.env(c, "CXR_ROLES")) && "tensorrt".equals(Manifests.env(c, "CXR_INFERENCE_ENGINE"))
                    && number(get(c, "resources", "limits", "nvidia.com/gpu")) < 1) {
                problem(d, name + " uses TensorRT but has no nvidia.com/gpu limit");
            }
        }
    }

    private void probe(Doc d, Map<String, Object> c, String kind, String path, Set<Object> ports) {
        Object probe = c.get(kind);
        if (probe == null) {
            problem(d, "container " + c.get("name") + " has no " + kind);
            return;
        }
        if (!path.equals(str(probe, "httpGet", "path"))) {
            problem(d, "container " + c.get("name") + " " + kind + " is not an HTTP GET of " + path);
        }
        if (!ports.contains(str(probe, "httpGet", "port"))) {
            problem(d, "container " + c.get("name") + " " + kind + " port " + str(probe, "httpGet", "port")
                    + " is not a container port");
        }
    }

    private void secretKey(Doc d, String secret, String key) {
        Doc s = find("Secret", secret);
        if (s == null) {
            problem(d, "references missing Secret " + secret);
        } else if (!map(s.object(), "stringData").containsKey(key) && !map(s.object(), "data").containsKey(key)) {
            problem(d, "references key " + key + " that Secret " + secret + " lacks");
        }
    }

    private void service(Doc d) {
        Map<String, Object> o = d.object();
        List<Object> ports = list(o, "spec", "ports");
        if (ports.isEmpty()) {
            problem(d, "no ports");
        }
        Map<String, Object> selector = map(o, "spec", "selector");
        List<Doc> backends = docs.stream().filter(w -> podSpec(w.object()) != null)
                .filter(w -> subset(selector, map(w.object(), "spec", "template", "metadata", "labels"))).toList();
        if (backends.isEmpty()) {
            problem(d, "selector " + selector + " matches no workload");
            return;
        }
        for (Object p : ports) {
            if (get(p, "port") == null) {
                problem(d, "a port without port:");
            }
            Object target = get(p, "targetPort") != null ? get(p, "targetPort") : get(p, "port");
            boolean served = backends.stream().flatMap(w -> containers(w.object()).stream())
                    .flatMap(c -> list(c.get("ports")).stream())
                    .anyMatch(cp -> String.valueOf(target).equals(str(cp, "name"))
                            || String.valueOf(target).equals(str(cp, "containerPort")));
            if (!served) {
                problem(d, "targetPort " + target + " is no container port of " + backends.get(0).name());
            }
        }
    }

    /** The consumer group the workers really join: the default of cxr.inference.group-id. */
    static String workerGroup() {
        return org.cxrgateway.testing.ConfigDefaults.of(org.cxrgateway.inference.InferenceConfig.class, "groupId");
    }

    private void scaledObject(Doc d) {
        Map<String, Object> o = d.object();
        String target = str(o, "spec", "scaleTargetRef", "name");
        String kind = Objects.requireNonNullElse(str(o, "spec", "scaleTargetRef", "kind"), "Deployment");
        if (find(kind, target == null ? "" : target) == null) {
            problem(d, "scaleTargetRef names no existing " + kind + ": " + target);
        }
        Predicate<Object> kafka = t -> "kafka".equals(str(t, "type"));
        List<Object> triggers = list(o, "spec", "triggers").stream().filter(kafka).toList();
        if (triggers.isEmpty()) {
            problem(d, "no kafka trigger");
        }
        for (Object t : triggers) {
            String topic = str(t, "metadata", "topic");
            String group = workerGroup();
            if (!group.equals(str(t, "metadata", "consumerGroup"))) {
                problem(d, "kafka trigger consumerGroup is not the workers' group " + group + " (cxr.inference.group-id)");
            }
            Doc kt = of("KafkaTopic").stream().filter(x -> topicName(x).equals(topic)).findFirst().orElse(null);
            if (kt == null) {
                problem(d, "kafka trigger topic " + topic + " has no KafkaTopic");
            } else if (number(get(o, "spec", "maxReplicaCount")) > number(get(kt.object(), "spec", "partitions"))) {
                problem(d, "maxReplicaCount exceeds the partitions of " + topic + " (idle consumers)");
            }
            String bootstrap = str(t, "metadata", "bootstrapServers");
            if (bootstrap == null || of("Kafka").stream().noneMatch(k -> bootstrap.startsWith(k.name() + "-kafka-bootstrap"))) {
                problem(d, "bootstrapServers " + bootstrap + " is not a Strimzi bootstrap service of this deployment");
            }
            String auth = str(t, "authenticationRef", "name");
            if (auth != null && find("TriggerAuthentication", auth) == null) {
                problem(d, "authenticationRef names missing TriggerAuthentication " + auth);
            }
        }
        for (Doc ta : of("TriggerAuthentication")) {
            for (Object ref : list(ta.object(), "spec", "secretTargetRef")) {
                secretKey(ta, str(ref, "name"), str(ref, "key"));
            }
        }
    }

    private long brokers(String cluster) {
        return of("KafkaNodePool").stream()
                .filter(p -> cluster.equals(str(p.object(), "metadata", "labels", "strimzi.io/cluster")))
                .filter(p -> list(p.object(), "spec", "roles").contains("broker"))
                .mapToLong(p -> number(get(p.object(), "spec", "replicas"))).sum();
    }

    private void kafka(Doc d) {
        Map<String, Object> o = d.object();
        if (!"enabled".equals(str(o, "metadata", "annotations", "strimzi.io/kraft"))) {
            problem(d, "not annotated strimzi.io/kraft: enabled");
        }
        if (get(o, "spec", "zookeeper") != null) {
            problem(d, "has spec.zookeeper; the cluster is KRaft");
        }
        boolean controller = of("KafkaNodePool").stream()
                .filter(p -> d.name().equals(str(p.object(), "metadata", "labels", "strimzi.io/cluster")))
                .anyMatch(p -> list(p.object(), "spec", "roles").contains("controller"));
        long brokers = brokers(d.name());
        if (!controller || brokers < 1) {
            problem(d, "needs KafkaNodePools with the controller and broker roles");
        }
        Map<String, Object> config = map(o, "spec", "kafka", "config");
        if (number(config.get("message.max.bytes")) < ONE_MIB) {
            problem(d, "message.max.bytes below 1 MiB: a job part carries one working image");
        }
        for (String rf : List.of("default.replication.factor", "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor", "min.insync.replicas")) {
            if (number(config.get(rf)) > brokers) {
                problem(d, rf + "=" + config.get(rf) + " exceeds the " + brokers + " broker(s)");
            }
        }
        if (number(config.get("min.insync.replicas")) > number(config.get("default.replication.factor"))) {
            problem(d, "min.insync.replicas exceeds default.replication.factor: every write would fail");
        }
    }

    private static String topicName(Doc t) {
        return Objects.requireNonNullElse(str(t.object(), "spec", "topicName"), t.name());
    }

    private Doc strimziCluster(Doc d) {
        String cluster = str(d.object(), "metadata", "labels", "strimzi.io/cluster");
        Doc kafka = cluster == null ? null : find("Kafka", cluster);
        if (kafka == null) {
            problem(d, "label strimzi.io/cluster=" + cluster + " names no Kafka CR");
        }
        return kafka;
    }

    private void kafkaTopic(Doc d) {
        Doc kafka = strimziCluster(d);
        Map<String, Object> spec = map(d.object(), "spec");
        long replicas = number(spec.get("replicas"));
        if (number(spec.get("partitions")) < 1) {
            problem(d, "partitions not set");
        }
        if (kafka != null && replicas > brokers(kafka.name())) {
            problem(d, "replicas " + replicas + " exceed the brokers of " + kafka.name());
        }
        if (number(get(spec, "config", "min.insync.replicas")) > replicas) {
            problem(d, "min.insync.replicas exceeds replicas: every write would fail");
        }
        // the gateway's producers send at most 1 MiB (cxr.kafka.max-message-bytes; a study travels one image per message)
        if (number(get(spec, "config", "max.message.bytes")) != ONE_MIB) {
            problem(d, "max.message.bytes is not 1 MiB (1048576), the gateway's message bound");
        }
    }

    private void networkPolicy(Doc d) {
        Map<String, Object> o = d.object();
        Map<String, Object> selector = map(o, "spec", "podSelector", "matchLabels");
        if (docs.stream().filter(w -> podSpec(w.object()) != null)
                .noneMatch(w -> subset(selector, map(w.object(), "spec", "template", "metadata", "labels")))) {
            problem(d, "podSelector " + selector + " selects no workload");
        }
        if (list(o, "spec", "policyTypes").contains("Egress")) {
            boolean dns = list(o, "spec", "egress").stream().flatMap(e -> list(e, "ports").stream())
                    .anyMatch(p -> "53".equals(str(p, "port")) && "UDP".equals(str(p, "protocol")));
            if (!dns) {
                problem(d, "egress policy without DNS (UDP 53): nothing would resolve");
            }
            boolean toKafka = list(o, "spec", "egress").stream().flatMap(e -> list(e, "to").stream())
                    .anyMatch(t -> get(t, "podSelector", "matchLabels", "strimzi.io/cluster") != null);
            if (!toKafka) {
                problem(d, "egress policy does not allow Kafka");
            }
        }
    }
}
