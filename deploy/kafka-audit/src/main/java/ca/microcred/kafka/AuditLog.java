package ca.microcred.kafka;

import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.UUID;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One JSON object per line on the logger {@code microcred.kafka.audit}: the broker's refusals
 * in a shape a shipper can read without parsing prose. Every record has a random {@code id}
 * so that a shipper which reads a line twice (it ships at least once) is deduplicated
 * downstream. Passwords and SCRAM proofs never reach this class.
 */
final class AuditLog {
    private static final Logger LOG = LoggerFactory.getLogger("microcred.kafka.audit");

    private AuditLog() {
    }

    static boolean enabled() {
        return LOG.isInfoEnabled();
    }

    static void write(String kind, Map<String, String> fields) {
        Map<String, String> record = new LinkedHashMap<>();
        record.put("id", UUID.randomUUID().toString());
        record.put("at", Instant.now().toString());
        record.put("kind", kind);
        record.putAll(fields);
        LOG.info(toJson(record));
    }

    static String toJson(Map<String, String> record) {
        StringBuilder out = new StringBuilder(256).append('{');
        boolean first = true;
        for (Map.Entry<String, String> e : record.entrySet()) {
            if (!first) {
                out.append(',');
            }
            first = false;
            quote(out, e.getKey()).append(':');
            if (e.getValue() == null) {
                out.append("null");
            } else {
                quote(out, e.getValue());
            }
        }
        return out.append('}').toString();
    }

    private static StringBuilder quote(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append('"');
    }
}
