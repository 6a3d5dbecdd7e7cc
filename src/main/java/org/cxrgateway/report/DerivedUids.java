package org.cxrgateway.report;

import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.UUID;

/**
 * Deterministic UIDs: the same inputs always give the same UID, so that a redelivered result overwrites
 * in the PACS (same SOP Instance UID) and matches the FHIR identifiers of the first delivery.
 * Form: {@code 2.25.<name-based UUID as an unsigned decimal integer>} (PS3.5 B.2).
 */
public final class DerivedUids {

    private DerivedUids() {
    }

    /** A UID from an ordered list of parts; parts are joined with a separator that cannot occur in a UID. */
    public static String uid(String... parts) {
        UUID u = UUID.nameUUIDFromBytes(("cxr-gateway|" + String.join("|", parts)).getBytes(StandardCharsets.UTF_8));
        ByteBuffer b = ByteBuffer.allocate(16);
        b.putLong(u.getMostSignificantBits());
        b.putLong(u.getLeastSignificantBits());
        return "2.25." + new BigInteger(1, b.array());
    }

    /** The UUID string of the same derivation, for FHIR urn:uuid fullUrls. */
    public static String uuid(String... parts) {
        return UUID.nameUUIDFromBytes(("cxr-gateway|" + String.join("|", parts)).getBytes(StandardCharsets.UTF_8)).toString();
    }
}
