/**
 * The HTTP port's own doors: bearer-token authentication (static tokens, SmallRye JWT; client certificates on
 * the optional mutual-TLS port) for /admin and /dicomweb, and the metric and log line of every refusal. Which path needs which role is the path policy in
 * application.properties (quarkus.http.auth.permission.*). Also the operator endpoints that span ingest and
 * delivery ({@link org.cxrgateway.http.StudyResource}: a study's life, retraction, re-score).
 */
package org.cxrgateway.http;
