package ca.microcred.kafka;

import java.security.Provider;
import java.security.Security;
import java.util.Map;

import javax.security.auth.callback.CallbackHandler;
import javax.security.sasl.SaslException;
import javax.security.sasl.SaslServer;
import javax.security.sasl.SaslServerFactory;

import org.apache.kafka.common.security.scram.internals.ScramSaslServer;

/**
 * A JCA provider, placed first, whose SCRAM server factory hands out Kafka's own
 * {@link ScramSaslServer} wrapped in {@link AuditingSaslServer}. Kafka looks its SASL servers
 * up through {@code javax.security.sasl.Sasl}, which asks providers in order, so the wrapper
 * sees every SCRAM exchange while Kafka's code still does all the checking.
 */
public final class AuditingSaslProvider extends Provider {
    static final String NAME = "MicrocredAuditingSasl";
    private static final long serialVersionUID = 1L;

    private AuditingSaslProvider() {
        super(NAME, "1.0", "Kafka SCRAM servers that record failed authentications");
        put("SaslServerFactory.SCRAM-SHA-256", Factory.class.getName());
        put("SaslServerFactory.SCRAM-SHA-512", Factory.class.getName());
    }

    static synchronized void install() {
        if (Security.getProvider(NAME) == null) {
            Security.insertProviderAt(new AuditingSaslProvider(), 1);
        }
    }

    /** Instantiated by JCA through the provider entries above. */
    public static final class Factory implements SaslServerFactory {
        private final SaslServerFactory scram = new ScramSaslServer.ScramSaslServerFactory();

        @Override
        public SaslServer createSaslServer(String mechanism, String protocol, String serverName,
                                           Map<String, ?> props, CallbackHandler handler)
                throws SaslException {
            SaslServer server = scram.createSaslServer(mechanism, protocol, serverName, props,
                    handler);
            return server == null ? null : new AuditingSaslServer(server);
        }

        @Override
        public String[] getMechanismNames(Map<String, ?> props) {
            return scram.getMechanismNames(props);
        }
    }
}
