package ca.microcred.kafka;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

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
 *
 * <p>One rule of its own (ADR 21): with {@value #SERVICES_LISTENER} naming a listener (the
 * services' own, which has no re-authentication limit), only principals whose user name
 * starts with {@value #SERVICES_PREFIX} (default {@code svc-}) and the super users may do
 * anything there; every other principal (a provider) is denied every action on it, and each
 * denial is audited. A provider therefore cannot keep a session past a password rotation by
 * logging in on the services' listener instead of its own.
 */
public class AuditingAuthorizer extends StandardAuthorizer {
    static final String SERVICES_LISTENER = "microcred.services.listener";
    static final String SERVICES_PREFIX = "microcred.services.principal.prefix";

    private String servicesListener;
    private String servicesPrefix = "svc-";
    private final Set<String> superUsers = new HashSet<>();

    static {
        AuditingSaslProvider.install();
    }

    @Override
    public void configure(Map<String, ?> configs) {
        AuditingSaslProvider.install();
        super.configure(configs);
        Object listener = configs.get(SERVICES_LISTENER);
        if (listener != null && !listener.toString().isBlank()) {
            servicesListener = listener.toString().trim().toUpperCase(Locale.ROOT);
        }
        Object prefix = configs.get(SERVICES_PREFIX);
        if (prefix != null && !prefix.toString().isBlank()) {
            servicesPrefix = prefix.toString().trim();
        }
        Object supers = configs.get("super.users");
        if (supers != null) {
            for (String user : supers.toString().split(";")) {
                if (!user.isBlank()) {
                    superUsers.add(user.trim());
                }
            }
        }
    }

    @Override
    public List<AuthorizationResult> authorize(AuthorizableRequestContext context,
                                               List<Action> actions) {
        if (offServicesListener(context)) {
            List<AuthorizationResult> denied = new ArrayList<>(actions.size());
            for (Action action : actions) {
                denied.add(AuthorizationResult.DENIED);
                if (AuditLog.enabled()) {
                    Map<String, String> f = fields(context, action);
                    f.put("reason", "only service principals may use listener " + servicesListener);
                    AuditLog.write("acl-denied", f);
                }
            }
            return denied;
        }
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

    /** A principal that is neither a service nor a super user, on the services' listener. */
    private boolean offServicesListener(AuthorizableRequestContext context) {
        if (servicesListener == null || context.listenerName() == null
                || !servicesListener.equalsIgnoreCase(context.listenerName())) {
            return false;
        }
        String principal = String.valueOf(context.principal());
        if (superUsers.contains(principal)) {
            return false;
        }
        return !("User".equals(context.principal().getPrincipalType())
                && context.principal().getName().startsWith(servicesPrefix));
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
