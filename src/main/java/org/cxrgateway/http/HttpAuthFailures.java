package org.cxrgateway.http;

import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.vertx.http.runtime.filters.Filters;
import io.vertx.ext.web.RoutingContext;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import org.jboss.logging.Logger;

/**
 * Counts and logs every request that the path policy refuses [cxr_http_auth_failures_total{reason,path}]:
 * reason missing-token or invalid-token (401: no bearer token, or one that no static token matches and that is
 * no valid JWT: bad signature, other issuer, expired) or forbidden (403: authenticated, role lacking); path is
 * the guarded area (admin, dicomweb), so both labels stay bounded. One WARN line per refusal, without the
 * token, query string or stack trace (the query names studies). It looks at the status the response ends
 * with, so one place covers both mechanisms and whichever Quarkus handler answers the refusal.
 */
@ApplicationScoped
public class HttpAuthFailures {

    private static final Logger LOG = Logger.getLogger(HttpAuthFailures.class);

    /** Above the security handlers (authentication, authorization), so the end of every refusal is seen. */
    private static final int PRIORITY = 1000;

    @Inject
    MeterRegistry registry;

    void register(@Observes Filters filters) {
        filters.register(this::watch, PRIORITY);
    }

    private void watch(RoutingContext rc) {
        String area = area(rc.normalizedPath());
        if (area != null) {
            rc.addHeadersEndHandler(ignored -> {
                int status = rc.response().getStatusCode();
                if (status == 401 || status == 403) {
                    String reason = status == 403 ? "forbidden"
                            : rc.request().getHeader("Authorization") == null ? "missing-token" : "invalid-token";
                    registry.counter("cxr.http.auth.failures", "reason", reason, "path", area).increment();
                    LOG.warnf("HTTP %s /%s refused %d (%s) from %s", rc.request().method(), area, status, reason,
                            rc.request().remoteAddress() == null ? "?" : rc.request().remoteAddress().hostAddress());
                }
            });
        }
        rc.next();
    }

    /** The guarded area of a path, or null for the open ones (health, metrics). */
    static String area(String path) {
        for (String area : new String[] {"admin", "dicomweb"}) {
            if (path.equals("/" + area) || path.startsWith("/" + area + "/")) {
                return area;
            }
        }
        return null;
    }
}
