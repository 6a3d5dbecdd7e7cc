package org.cxrgateway.inference;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads one float initializer from an ONNX file. ONNX Runtime does not expose initializers, and the
 * classifier head weights are needed on the host for CAM; a minimal protobuf walk (ModelProto.graph
 * -> GraphProto.initializer -> TensorProto) avoids a protobuf dependency. Handles raw_data,
 * float_data and external data (the demo packages keep their weights in weights.bin).
 */
public final class OnnxInitializers {

    /** A float tensor: dims and values (row-major). */
    public record FloatTensor(long[] dims, float[] values) {
    }

    private static final int FLOAT = 1;

    private OnnxInitializers() {
    }

    public static FloatTensor read(Path onnx, String name) {
        byte[] model;
        try {
            model = Files.readAllBytes(onnx);
        } catch (IOException e) {
            throw new ModelPackageException(onnx + ": cannot read: " + e.getMessage(), e);
        }
        Reader m = new Reader(model, 0, model.length);
        while (m.more()) {
            int tag = m.varint32();
            if (tag >>> 3 == 7 && (tag & 7) == 2) { // ModelProto.graph
                int len = m.varint32();
                Reader g = new Reader(model, m.pos, m.pos + len);
                m.pos += len;
                while (g.more()) {
                    int gt = g.varint32();
                    if (gt >>> 3 == 5 && (gt & 7) == 2) { // GraphProto.initializer
                        int tl = g.varint32();
                        FloatTensor t = tensor(onnx, model, g.pos, g.pos + tl, name);
                        g.pos += tl;
                        if (t != null) {
                            return t;
                        }
                    } else {
                        g.skip(gt);
                    }
                }
            } else {
                m.skip(tag);
            }
        }
        throw new ModelPackageException(onnx.getFileName() + ": no initializer named '" + name + "' (head.weight / head.bias)");
    }

    private static FloatTensor tensor(Path onnx, byte[] b, int from, int to, String wanted) {
        Reader r = new Reader(b, from, to);
        List<Long> dims = new ArrayList<>();
        int dataType = 0;
        String name = null;
        int rawFrom = -1, rawLen = 0;
        List<Float> floatData = new ArrayList<>();
        String location = null;
        long offset = 0, length = -1;
        boolean external = false;
        while (r.more()) {
            int tag = r.varint32();
            int field = tag >>> 3, wire = tag & 7;
            if (field == 1 && wire == 0) {
                dims.add(r.varint64());
            } else if (field == 1 && wire == 2) {
                int len = r.varint32();
                int end = r.pos + len;
                while (r.pos < end) {
                    dims.add(r.varint64());
                }
            } else if (field == 2 && wire == 0) {
                dataType = r.varint32();
            } else if (field == 8 && wire == 2) {
                int len = r.varint32();
                name = new String(b, r.pos, len, StandardCharsets.UTF_8);
                r.pos += len;
                if (!name.equals(wanted)) {
                    return null;
                }
            } else if (field == 9 && wire == 2) {
                rawLen = r.varint32();
                rawFrom = r.pos;
                r.pos += rawLen;
            } else if (field == 4 && wire == 2) {
                int len = r.varint32();
                ByteBuffer bb = ByteBuffer.wrap(b, r.pos, len).order(ByteOrder.LITTLE_ENDIAN);
                for (int i = 0; i < len / 4; i++) {
                    floatData.add(bb.getFloat());
                }
                r.pos += len;
            } else if (field == 4 && wire == 5) {
                floatData.add(ByteBuffer.wrap(b, r.pos, 4).order(ByteOrder.LITTLE_ENDIAN).getFloat());
                r.pos += 4;
            } else if (field == 13 && wire == 2) {
                int len = r.varint32();
                Reader kv = new Reader(b, r.pos, r.pos + len);
                r.pos += len;
                String key = null, value = null;
                while (kv.more()) {
                    int kt = kv.varint32();
                    int l = kv.varint32();
                    String s = new String(b, kv.pos, l, StandardCharsets.UTF_8);
                    kv.pos += l;
                    if (kt >>> 3 == 1) {
                        key = s;
                    } else {
                        value = s;
                    }
                }
                if ("location".equals(key)) {
                    location = value;
                } else if ("offset".equals(key)) {
                    offset = Long.parseLong(value);
                } else if ("length".equals(key)) {
                    length = Long.parseLong(value);
                }
            } else if (field == 14 && wire == 0) {
                external = r.varint32() == 1;
            } else {
                r.skip(tag);
            }
        }
        if (name == null) {
            return null;
        }
        if (dataType != FLOAT) {
            throw new ModelPackageException(onnx.getFileName() + ": initializer '" + wanted + "' has ONNX data type " + dataType + ", expected FLOAT (1)");
        }
        long[] d = dims.stream().mapToLong(Long::longValue).toArray();
        long count = 1;
        for (long x : d) {
            count *= x;
        }
        float[] v = new float[Math.toIntExact(count)];
        if (external) {
            if (location == null || location.contains("..")) {
                throw new ModelPackageException(onnx.getFileName() + ": initializer '" + wanted + "' has a bad external data location");
            }
            Path file = onnx.resolveSibling(location);
            long want = length < 0 ? count * 4 : length;
            try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "r")) {
                byte[] buf = new byte[Math.toIntExact(want)];
                f.seek(offset);
                f.readFully(buf);
                ByteBuffer.wrap(buf).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(v);
            } catch (IOException e) {
                throw new ModelPackageException(onnx.getFileName() + ": initializer '" + wanted + "': cannot read external data " + file.getFileName() + ": " + e.getMessage(), e);
            }
        } else if (rawFrom >= 0) {
            ByteBuffer.wrap(b, rawFrom, rawLen).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(v);
        } else {
            for (int i = 0; i < v.length; i++) {
                v[i] = floatData.get(i);
            }
        }
        return new FloatTensor(d, v);
    }

    private static final class Reader {
        final byte[] b;
        int pos;
        final int end;

        Reader(byte[] b, int pos, int end) {
            this.b = b;
            this.pos = pos;
            this.end = end;
        }

        boolean more() {
            return pos < end;
        }

        long varint64() {
            long result = 0;
            for (int shift = 0; shift < 64; shift += 7) {
                byte x = b[pos++];
                result |= (long) (x & 0x7f) << shift;
                if ((x & 0x80) == 0) {
                    return result;
                }
            }
            throw new ModelPackageException("malformed ONNX protobuf (varint)");
        }

        int varint32() {
            return (int) varint64();
        }

        void skip(int tag) {
            switch (tag & 7) {
                case 0 -> varint64();
                case 1 -> pos += 8;
                case 2 -> {
                    int len = varint32();
                    pos += len;
                }
                case 5 -> pos += 4;
                default -> throw new ModelPackageException("malformed ONNX protobuf (wire type " + (tag & 7) + ")");
            }
        }
    }
}
