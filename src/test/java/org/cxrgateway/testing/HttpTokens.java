package org.cxrgateway.testing;

import io.restassured.RestAssured;
import io.restassured.specification.RequestSpecification;

/**
 * The static bearer tokens of the test profile (%test.cxr.http.auth.tokens.* in application.properties holds
 * their SHA-256): /admin needs a token since it is no longer open.
 */
public final class HttpTokens {

    /** Role admin. */
    public static final String ADMIN = "test-admin-token";
    /** Role ingest only: /admin answers it 403. */
    public static final String INGEST = "test-ingest-token";

    private HttpTokens() {
    }

    /** RestAssured's given(), sending the admin token. */
    public static RequestSpecification asAdmin() {
        return RestAssured.given().auth().oauth2(ADMIN);
    }
}
