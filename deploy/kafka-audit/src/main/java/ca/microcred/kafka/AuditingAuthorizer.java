package ca.microcred.kafka;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.metadata.authorizer.StandardAuthorizer;
import org.apache.kafka.server.authorizer.Action;
import org.apache.kafka.server.authorizer.AuthorizableRequestContext;
import org.apache.kafka.server.authorizer.AuthorizationResult;

/**
 * Kafka's StandardAuthorizer, deciding exactly as it does, that also writes each denial
 * (the ones Kafka itself would log: {@link Action#logIfDenied()}) to {@link AuditLog}. Loading
 * it also installs {@link AuditingSaslProvider}, so that failed SCRAM logins are recorded
 * with the user name they tried, which Kafka's own log leaves out.
 *
 * <p>Broker config: {@code authorizer.class.name=ca.microcred.kafka.AuditingAuthorizer}.
 */
public class AuditingAuthorizer extends StandardAuthorizer {
    static {
        AuditingSaslProvider.install();
    }

    @Override
    public void configure(Map<String, ?> configs) {
        AuditingSaslProvider.install();
        super.configure(configs);
    }

    @Override
    public List<AuthorizationResult> authorize(AuthorizableRequestContext context,
                                               List<Action> actions) {
        List<AuthorizationResult> results = super.authorize(context, actions);
        for (int i = 0; i < results.size(); i++) {
            Action action = actions.get(i);
            if (results.get(i) == AuthorizationResult.DENIED && action.logIfDenied()
                    && AuditLog.enabled()) {
                AuditLog.write("acl-denied", fields(context, action));
            }
        }
        return results;
    }

    private static Map<String, String> fields(AuthorizableRequestContext context, Action action) {
        Map<String, String> f = new LinkedHashMap<>();
        f.put("principal", String.valueOf(context.principal()));
        f.put("host", context.clientAddress() == null ? null
                : context.clientAddress().getHostAddress());
        f.put("listener", context.listenerName());
        f.put("request", requestName(context.requestType()));
        f.put("operation", action.operation().name());
        f.put("resource_type", action.resourcePattern().resourceType().name());
        f.put("resource_name", action.resourcePattern().name());
        f.put("pattern_type", action.resourcePattern().patternType().name());
        return f;
    }

    private static String requestName(int apiKey) {
        try {
            return ApiKeys.forId(apiKey).name;
        } catch (IllegalArgumentException unknown) {
            return String.valueOf(apiKey);
        }
    }
}
