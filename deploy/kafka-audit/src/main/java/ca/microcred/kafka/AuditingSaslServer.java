package ca.microcred.kafka;

import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

import javax.security.sasl.SaslException;
import javax.security.sasl.SaslServer;

/**
 * Delegates every call to Kafka's SCRAM server; when an exchange fails it records the
 * mechanism, the user name from the client-first message (RFC 5802 section 5.1) and the
 * failure, never the proof. The exception is rethrown unchanged, so the client sees exactly
 * what Kafka would have told it.
 */
final class AuditingSaslServer implements SaslServer {
    private final SaslServer delegate;
    private String username;

    AuditingSaslServer(SaslServer delegate) {
        this.delegate = delegate;
    }

    @Override
    public byte[] evaluateResponse(byte[] response) throws SaslException {
        if (username == null) {
            username = usernameFromClientFirst(response);
        }
        try {
            return delegate.evaluateResponse(response);
        } catch (SaslException | RuntimeException e) {
            Map<String, String> f = new LinkedHashMap<>();
            f.put("mechanism", delegate.getMechanismName());
            f.put("username", username);
            f.put("reason", e.getMessage());
            AuditLog.write("authentication-failed", f);
            throw e;
        }
    }

    /** "n,,n=alice,r=nonce" (or with an authzid) → "alice"; "=2C" and "=3D" decoded. */
    static String usernameFromClientFirst(byte[] message) {
        String text = new String(message, StandardCharsets.UTF_8);
        String[] parts = text.split(",", -1);
        for (int i = 2; i < parts.length; i++) {
            if (parts[i].startsWith("n=")) {
                return parts[i].substring(2).replace("=2C", ",").replace("=3D", "=");
            }
        }
        return "";
    }

    @Override
    public String getMechanismName() {
        return delegate.getMechanismName();
    }

    @Override
    public boolean isComplete() {
        return delegate.isComplete();
    }

    @Override
    public String getAuthorizationID() {
        return delegate.getAuthorizationID();
    }

    @Override
    public byte[] unwrap(byte[] incoming, int offset, int len) throws SaslException {
        return delegate.unwrap(incoming, offset, len);
    }

    @Override
    public byte[] wrap(byte[] outgoing, int offset, int len) throws SaslException {
        return delegate.wrap(outgoing, offset, len);
    }

    @Override
    public Object getNegotiatedProperty(String propName) {
        return delegate.getNegotiatedProperty(propName);
    }

    @Override
    public void dispose() throws SaslException {
        delegate.dispose();
    }
}
