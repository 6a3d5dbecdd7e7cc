package org.cxrgateway.dicom;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.cxrgateway.dicom.DimseStatus.Kind;
import org.junit.jupiter.api.Test;

/** The classes of C-STORE statuses (PS3.4 B.2.3, PS3.7 C) that decide between acknowledging, retrying and giving up. */
class DimseStatusTest {

    static Kind kind(int code) {
        return DimseStatus.of(code).kind();
    }

    @Test
    void classesOfTheStandardCodes() {
        assertEquals(Kind.SUCCESS, kind(0x0000));
        for (int warning : new int[] {0x0001, 0x0107, 0x0116, 0xB000, 0xB006, 0xB007}) {
            assertEquals(Kind.WARNING, kind(warning), Integer.toHexString(warning));
        }
        for (int later : new int[] {0xA700, 0xA7FF, 0x0213}) {
            assertEquals(Kind.TRANSIENT_FAILURE, kind(later), Integer.toHexString(later));
        }
        for (int never : new int[] {0xA900, 0xA9FF, 0xC000, 0xC002, 0xCFFF, 0x0122, 0x0124, 0x0210, 0x0211, 0x0212, 0xFE00}) {
            assertEquals(Kind.PERMANENT_FAILURE, kind(never), Integer.toHexString(never));
        }
    }

    @Test
    void theReasonIsThePeersCommentOrTheStandardMeaning() {
        assertEquals("0xA700 (Refused: out of resources)", DimseStatus.of(0xA700).toString());
        assertEquals("0xA702 (Refused: out of resources)", DimseStatus.of(0xA702).toString());
        assertEquals("0xC123 (Error: cannot understand)", DimseStatus.of(0xC123).toString());
        assertEquals("0xA900 (UID mismatch)", new DimseStatus(0xA900, " UID mismatch ").toString());
        assertEquals(true, DimseStatus.of(0xB000).acknowledged());
        assertEquals(false, DimseStatus.of(0xA700).acknowledged());
    }
}
