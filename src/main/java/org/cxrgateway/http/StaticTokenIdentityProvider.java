package org.cxrgateway.http;

import io.quarkus.runtime.Startup;
import io.quarkus.security.identity.AuthenticationRequestContext;
import io.quarkus.security.identity.IdentityProvider;
import io.quarkus.security.identity.SecurityIdentity;
import io.quarkus.security.identity.request.TokenAuthenticationRequest;
import io.quarkus.security.runtime.QuarkusPrincipal;
import io.quarkus.security.runtime.QuarkusSecurityIdentity;
import io.smallrye.mutiny.Uni;
import jakarta.annotation.PostConstruct;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * Accepts the static bearer tokens of {@link HttpAuthConfig}. SmallRye JWT's bearer mechanism hands every
 * bearer token to the identity providers; this one runs first and answers no identity (not a failure) for a
 * token it does not know, so that the JWT validator then decides. A presented token is hashed and compared
 * with every configured hash in constant time, so neither timing nor early exit tells how much of it matched.
 */
@Startup
@ApplicationScoped
public class StaticTokenIdentityProvider implements IdentityProvider<TokenAuthenticationRequest> {

    @Inject
    HttpAuthConfig config;

    /** Token name to the SHA-256 it must hash to. */
    private Map<String, byte[]> hashes;

    /**
     * Parsed when the bean is made, which @Startup does at startup: a malformed hash stops the process with its
     * token's name, not a request later.
     */
    @PostConstruct
    void parse() {
        hashes = new TreeMap<>();
        config.tokens().forEach((name, token) -> {
            byte[] hash;
            try {
                hash = HexFormat.of().parseHex(token.sha256().trim().toLowerCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                hash = new byte[0];
            }
            if (hash.length != 32) {
                throw new IllegalStateException("cxr.http.auth.tokens." + name + ".sha256 is not 64 hex digits (a SHA-256)");
            }
            hashes.put(name, hash);
        });
    }

    @Override
    public Class<TokenAuthenticationRequest> getRequestType() {
        return TokenAuthenticationRequest.class;
    }

    /**
     * Before SmallRye JWT's validator, which keeps the default priority: a static token is not a JWT and would
     * fail there, and a failure ends the chain.
     */
    @Override
    public int priority() {
        return IdentityProvider.super.priority() + 1;
    }

    @Override
    public Uni<SecurityIdentity> authenticate(TokenAuthenticationRequest request, AuthenticationRequestContext context) {
        byte[] presented = sha256(request.getToken().getToken());
        String matched = null;
        for (Map.Entry<String, byte[]> e : hashes.entrySet()) {
            if (MessageDigest.isEqual(presented, e.getValue()) && matched == null) {
                matched = e.getKey();
            }
        }
        if (matched == null) {
            return Uni.createFrom().nullItem();
        }
        return Uni.createFrom().item(QuarkusSecurityIdentity.builder().setPrincipal(new QuarkusPrincipal(matched))
                .addRoles(new HashSet<>(config.tokens().get(matched).roles())).build());
    }

    private static byte[] sha256(String token) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(token.getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is mandatory in every JRE", e);
        }
    }
}
