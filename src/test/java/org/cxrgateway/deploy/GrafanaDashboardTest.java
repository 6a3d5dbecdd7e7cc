package org.cxrgateway.deploy;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** deploy/grafana/cxr-gateway-dashboard.json imports: it parses, and every panel queries Prometheus. */
class GrafanaDashboardTest {

    @Test
    void dashboardHasPrometheusPanelsCoveringTheFlow() throws Exception {
        JsonNode d = NodeLint.JSON.readTree(NodeLint.repoRoot().resolve("deploy/grafana/cxr-gateway-dashboard.json").toFile());
        assertEquals("cxr-gateway", d.get("uid").asText());
        JsonNode panels = d.get("panels");
        assertTrue(panels.isArray() && panels.size() >= 8, "panels: " + panels.size());
        Set<String> metrics = new HashSet<>();
        Pattern metric = Pattern.compile("\\b((?:cxr|kafka)_[a-z0-9_]+)");
        Set<Integer> ids = new HashSet<>();
        for (JsonNode p : panels) {
            String title = p.get("title").asText();
            assertTrue(ids.add(p.get("id").asInt()), "duplicate panel id in " + title);
            assertEquals("prometheus", p.get("datasource").get("type").asText(), title);
            JsonNode targets = p.get("targets");
            assertTrue(targets.isArray() && !targets.isEmpty(), title + " has no targets");
            Set<String> refIds = new HashSet<>();
            for (JsonNode t : targets) {
                assertTrue(refIds.add(t.get("refId").asText()), title + ": duplicate refId");
                String expr = t.get("expr").asText();
                assertFalse(expr.isBlank(), title + ": empty expr");
                assertEquals(count(expr, '('), count(expr, ')'), title + ": unbalanced parentheses in " + expr);
                Matcher m = metric.matcher(expr);
                boolean any = false;
                while (m.find()) {
                    metrics.add(m.group(1));
                    any = true;
                }
                assertTrue(any, title + ": no cxr_/kafka_ metric in " + expr);
            }
        }
        // One panel or more for each stage the issue names.
        for (String stage : List.of("associations", "instances_received", "instances_rejected", "spool",
                "studies_published", "publish_latency", "inference_images", "end_to_end_seconds", "delivery",
                "dead_letters", "consumer_lag", "consumergroup_lag", "studies_quarantined", "http_auth_failures")) {
            assertTrue(metrics.stream().anyMatch(m -> m.contains(stage)), "no metric for " + stage + " in " + metrics);
        }
        Set<String> exposed = exposedMetricNames();
        for (String m : metrics) {
            if (m.startsWith("cxr_")) {
                assertTrue(exposed.contains(m), m + " is not a metric the gateway exposes; it exposes " + exposed);
            }
        }
        JsonNode vars = d.get("templating").get("list");
        assertTrue(vars.toString().contains("\"type\":\"datasource\""), "datasource variable");
    }

    /**
     * The Prometheus series names of every meter registered in src/main/java, derived the way Micrometer's
     * Prometheus registry names them: dots become underscores, counters end in _total, timers in
     * _seconds (quantiles) / _seconds_count / _seconds_sum / _seconds_max.
     */
    static Set<String> exposedMetricNames() throws java.io.IOException {
        Pattern meter = Pattern.compile("(Counter|Timer|Gauge)\\.builder\\(\"(cxr[._][a-z0-9_.]+)\"|\\.counter\\(\"(cxr[._][a-z0-9_.]+)\"");
        Set<String> names = new HashSet<>();
        List<java.nio.file.Path> sources;
        try (var files = java.nio.file.Files.walk(NodeLint.repoRoot().resolve("src/main/java"))) {
            sources = files.filter(f -> f.toString().endsWith(".java")).toList();
        }
        for (java.nio.file.Path f : sources) {
            Matcher m = meter.matcher(java.nio.file.Files.readString(f));
            while (m.find()) {
                String kind = m.group(1) == null ? "Counter" : m.group(1);
                String base = (m.group(2) == null ? m.group(3) : m.group(2)).replace('.', '_');
                switch (kind) {
                    case "Counter" -> names.add(base.endsWith("_total") ? base : base + "_total");
                    case "Timer" -> {
                        for (String suffix : List.of("_seconds", "_seconds_count", "_seconds_sum", "_seconds_max")) {
                            names.add(base + suffix);
                        }
                    }
                    default -> names.add(base);
                }
            }
        }
        assertTrue(names.contains("cxr_ingest_instances_received_total"), "meter scan found " + names);
        return names;
    }

    private static long count(String s, char c) {
        return s.chars().filter(x -> x == c).count();
    }
}
