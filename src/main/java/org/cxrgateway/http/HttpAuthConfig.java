package org.cxrgateway.http;

import io.smallrye.config.ConfigMapping;

import java.util.List;
import java.util.Map;

/**
 * Static bearer tokens accepted on the HTTP port, next to JWTs (mp.jwt.verify.*) and, on the HTTPS port, client
 * certificates (quarkus.tls.*). With none of them configured, every path that needs a role answers 401: nothing
 * is open by default.
 */
@ConfigMapping(prefix = "cxr.http.auth")
public interface HttpAuthConfig {

    /**
     * Tokens by name (the name is the principal, and what the log shows; never the token). Default: none.
     * Only the SHA-256 of each token is configured, so neither the configuration nor a config dump reveals it.
     */
    Map<String, StaticToken> tokens();

    interface StaticToken {

        /** Lower-case hex SHA-256 of the token's UTF-8 bytes: {@code printf %s "$TOKEN" | sha256sum}. Required. */
        String sha256();

        /** Roles the token carries: admin (/admin), ingest (/dicomweb). Required. */
        List<String> roles();
    }
}
