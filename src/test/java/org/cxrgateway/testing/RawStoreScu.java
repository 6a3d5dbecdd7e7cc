package org.cxrgateway.testing;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * A hand-made C-STORE SCU that sends data set bytes verbatim (Explicit VR Little Endian), so that a
 * test can send what no well-behaved toolkit would: a data set cut short, or garbage after a valid
 * start. Returns the DIMSE status the peer answered.
 */
public final class RawStoreScu {

    private static final String EXPLICIT_LE = "1.2.840.10008.1.2.1";
    private static final int FRAGMENT = 16 * 1024;

    private RawStoreScu() {
    }

    /** @return the C-STORE-RSP status; throws if the association is not accepted or no response comes. */
    public static int store(int port, String callingAe, String calledAe, String sopClass, String sopInstance,
                            byte[] dataSet) throws IOException {
        try (Socket s = associateAndSend(port, callingAe, calledAe, sopClass, sopInstance, dataSet, dataSet.length)) {
            OutputStream out = s.getOutputStream();
            DataInputStream in = new DataInputStream(s.getInputStream());
            int type = in.readUnsignedByte();
            in.readUnsignedByte();
            byte[] pdu = new byte[in.readInt()];
            in.readFully(pdu);
            if (type != 0x04) {
                throw new IOException("expected P-DATA, got PDU type " + type);
            }
            ByteBuffer b = ByteBuffer.wrap(pdu, 6, pdu.length - 6).order(ByteOrder.LITTLE_ENDIAN);
            while (b.remaining() >= 8) {
                int group = b.getShort() & 0xFFFF;
                int element = b.getShort() & 0xFFFF;
                int len = b.getInt();
                if (group == 0 && element == 0x0900) {
                    int status = b.getShort() & 0xFFFF;
                    releaseQuietly(out, in);
                    return status;
                }
                b.position(b.position() + len);
            }
            throw new IOException("no status in response");
        }
    }

    /**
     * Starts a C-STORE and stops halfway through the data set, leaving the association open: what a
     * crash of either side looks like in the middle of a transfer. The caller closes the socket.
     */
    public static Socket storeHalf(int port, String callingAe, String calledAe, String sopClass, String sopInstance,
                                   byte[] dataSet) throws IOException {
        return associateAndSend(port, callingAe, calledAe, sopClass, sopInstance, dataSet, dataSet.length / 2);
    }

    private static Socket associateAndSend(int port, String callingAe, String calledAe, String sopClass,
                                           String sopInstance, byte[] dataSet, int upTo) throws IOException {
        Socket s = new Socket("127.0.0.1", port);
        try {
            s.setSoTimeout(30_000);
            OutputStream out = s.getOutputStream();
            DataInputStream in = new DataInputStream(s.getInputStream());
            out.write(associateRq(callingAe, calledAe, sopClass));
            int type = in.readUnsignedByte();
            in.readUnsignedByte();
            byte[] ac = new byte[in.readInt()];
            in.readFully(ac);
            if (type != 0x02) {
                throw new IOException("association not accepted, PDU type " + type);
            }
            ByteArrayOutputStream cmd = new ByteArrayOutputStream();
            implicit(cmd, 0x0002, pad(sopClass));
            implicit(cmd, 0x0100, us(0x0001));
            implicit(cmd, 0x0110, us(7));
            implicit(cmd, 0x0700, us(0));
            implicit(cmd, 0x0800, us(0x0000));
            implicit(cmd, 0x1000, pad(sopInstance));
            ByteArrayOutputStream withLength = new ByteArrayOutputStream();
            implicit(withLength, 0x0000, ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(cmd.size()).array());
            withLength.writeBytes(cmd.toByteArray());
            out.write(pData(withLength.toByteArray(), 0x03));
            for (int off = 0; off < upTo; off += FRAGMENT) {
                int end = Math.min(upTo, off + FRAGMENT);
                out.write(pData(Arrays.copyOfRange(dataSet, off, end), end == dataSet.length ? 0x02 : 0x00));
            }
            out.flush();
            return s;
        } catch (IOException | RuntimeException e) {
            s.close();
            throw e;
        }
    }

    private static void releaseQuietly(OutputStream out, DataInputStream in) {
        try {
            out.write(new byte[] {5, 0, 0, 0, 0, 4, 0, 0, 0, 0});
            out.flush();
            in.readUnsignedByte();
        } catch (IOException ignored) {
            // the status is what the caller asked for; a release that goes wrong changes nothing
        }
    }

    public static byte[] associateRq(String callingAe, String calledAe, String sopClass) {
        ByteArrayOutputStream items = new ByteArrayOutputStream();
        item(items, 0x10, "1.2.840.10008.3.1.1.1".getBytes(StandardCharsets.US_ASCII));
        ByteArrayOutputStream pc = new ByteArrayOutputStream();
        pc.writeBytes(new byte[] {1, 0, 0, 0});
        item(pc, 0x30, sopClass.getBytes(StandardCharsets.US_ASCII));
        item(pc, 0x40, EXPLICIT_LE.getBytes(StandardCharsets.US_ASCII));
        item(items, 0x20, pc.toByteArray());
        ByteArrayOutputStream user = new ByteArrayOutputStream();
        item(user, 0x51, new byte[] {0, 0, (byte) 0x40, 0});
        item(user, 0x52, "1.2.3.4".getBytes(StandardCharsets.US_ASCII));
        item(items, 0x50, user.toByteArray());
        ByteBuffer b = ByteBuffer.allocate(6 + 68 + items.size());
        b.put((byte) 1).put((byte) 0).putInt(68 + items.size());
        b.putShort((short) 1).putShort((short) 0);
        b.put(String.format("%-16s", calledAe).getBytes(StandardCharsets.US_ASCII));
        b.put(String.format("%-16s", callingAe).getBytes(StandardCharsets.US_ASCII));
        b.put(new byte[32]);
        b.put(items.toByteArray());
        return b.array();
    }

    private static void item(ByteArrayOutputStream out, int type, byte[] value) {
        out.write(type);
        out.write(0);
        out.write(value.length >> 8);
        out.write(value.length);
        out.writeBytes(value);
    }

    private static byte[] pData(byte[] value, int header) {
        ByteBuffer b = ByteBuffer.allocate(6 + 4 + 2 + value.length);
        b.put((byte) 4).put((byte) 0).putInt(4 + 2 + value.length);
        b.putInt(2 + value.length).put((byte) 1).put((byte) header).put(value);
        return b.array();
    }

    private static void implicit(ByteArrayOutputStream out, int element, byte[] value) {
        ByteBuffer b = ByteBuffer.allocate(8 + value.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putShort((short) 0).putShort((short) element).putInt(value.length).put(value);
        out.writeBytes(b.array());
    }

    private static byte[] us(int v) {
        return ByteBuffer.allocate(2).order(ByteOrder.LITTLE_ENDIAN).putShort((short) v).array();
    }

    private static byte[] pad(String uid) {
        byte[] v = uid.getBytes(StandardCharsets.US_ASCII);
        return v.length % 2 == 0 ? v : Arrays.copyOf(v, v.length + 1);
    }
}
