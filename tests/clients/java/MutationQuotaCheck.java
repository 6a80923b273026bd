// The controller mutation quota (KIP-599) as the Java AdminClient meets it:
// one client id given `controller_mutation_rate` = 1 partition per second
// (a burst of 11), then topics created, grown and deleted with
// retryOnQuotaViolation(false), so each refusal reaches the program. Prints
// one line per step, the same against Kafka and against sluice
// (tests/client_quotas.rs compares them).
//
// usage: java -cp 'target/dependency/*' MutationQuotaCheck.java BOOTSTRAP PREFIX

import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.CreatePartitionsOptions;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.DeleteTopicsOptions;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.errors.ThrottlingQuotaExceededException;
import org.apache.kafka.common.quota.ClientQuotaAlteration;
import org.apache.kafka.common.quota.ClientQuotaEntity;
import org.apache.kafka.common.quota.ClientQuotaFilter;

public class MutationQuotaCheck {
    static final String CLIENT_ID = "mutator";

    public static void main(String[] args) throws Exception {
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        String bootstrap = args[0];
        String prefix = args[1];
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(TimeUnit.SECONDS.toMillis(120));
            } catch (InterruptedException e) {
                return;
            }
            System.out.println("watchdog: still running after 120 s");
            System.out.flush();
            Runtime.getRuntime().halt(3);
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();

        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, CLIENT_ID);
        try (Admin admin = Admin.create(props)) {
            setQuota(admin);
            var noRetry = new CreateTopicsOptions().retryOnQuotaViolation(false);
            String a = prefix + "-a", b = prefix + "-b", c = prefix + "-c", d = prefix + "-d";
            // 10 of the 11 in the burst.
            step("create a (10)", admin.createTopics(List.of(new NewTopic(a, 10, (short) 1)), noRetry).all());
            // 1 left: not below zero, so 5 are taken whole (4 below).
            step("create b (5)", admin.createTopics(List.of(new NewTopic(b, 5, (short) 1)), noRetry).all());
            // Below zero: refused, and so is every later topic of the request.
            var both = admin.createTopics(
                    List.of(new NewTopic(c, 1, (short) 1), new NewTopic(d, 1, (short) 1)), noRetry).values();
            long waitMs = step("create c (1) beside d", both.get(c));
            step("create d (1) beside c", both.get(d));
            // Past the throttle, the bucket refills: about 2 above zero.
            Thread.sleep(waitMs + 2000);
            step("grow b to 6", admin.createPartitions(Map.of(b, NewPartitions.increaseTo(6)),
                    new CreatePartitionsOptions().retryOnQuotaViolation(false)).all());
            // At or above zero: 10 taken whole (about 9 below).
            step("delete a", admin.deleteTopics(List.of(a),
                    new DeleteTopicsOptions().retryOnQuotaViolation(false)).all());
            step("delete b", admin.deleteTopics(List.of(b),
                    new DeleteTopicsOptions().retryOnQuotaViolation(false)).all());
            // The client's own retry waits out the throttle and succeeds.
            step("delete b, retrying", admin.deleteTopics(List.of(b)).all());
            System.out.println("exists: " + admin.listTopics().names().get().stream()
                    .filter(n -> n.startsWith(prefix)).sorted().toList());
        }
        System.out.flush();
        Runtime.getRuntime().halt(0);
    }

    /** Gives the client id its quota and waits until the broker lists it. */
    static void setQuota(Admin admin) throws Exception {
        var entity = new ClientQuotaEntity(Map.of(ClientQuotaEntity.CLIENT_ID, CLIENT_ID));
        var op = new ClientQuotaAlteration.Op("controller_mutation_rate", 1.0);
        admin.alterClientQuotas(List.of(new ClientQuotaAlteration(entity, List.of(op)))).all().get();
        for (int i = 0; i < 100; i++) {
            var quotas = admin.describeClientQuotas(ClientQuotaFilter.all()).entities().get();
            if (quotas.containsKey(entity)) {
                // Every part of the broker applies what it lists soon after.
                Thread.sleep(1000);
                return;
            }
            Thread.sleep(100);
        }
        throw new IllegalStateException("the quota never showed");
    }

    /**
     * Prints how `step` ended: "ok", or the error's name with whether the
     * client was told to wait; answers the throttle in ms (0 for ok).
     */
    static long step(String what, KafkaFuture<?> future) throws InterruptedException {
        try {
            future.get(60, TimeUnit.SECONDS);
            System.out.println(what + ": ok");
            return 0;
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof ThrottlingQuotaExceededException t) {
                System.out.println(what + ": THROTTLING_QUOTA_EXCEEDED, throttled "
                        + (t.throttleTimeMs() > 0 ? "> 0 ms" : "0 ms"));
                return t.throttleTimeMs();
            }
            System.out.println(what + ": " + cause.getClass().getSimpleName() + ": " + cause.getMessage());
            return 0;
        } catch (java.util.concurrent.TimeoutException e) {
            System.out.println(what + ": timed out");
            return 0;
        }
    }
}
