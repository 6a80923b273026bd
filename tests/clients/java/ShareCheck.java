// Share groups (KIP-932, queues for Kafka) with the reference Java client's
// KafkaShareConsumer, explicit acknowledgement
// (share.acknowledgement.mode=explicit).
//
// Run as a single-file source program, after `mvn dependency:copy-dependencies`
// in this directory:
//
//   java -cp 'target/dependency/*' ShareCheck.java BOOTSTRAP SCENARIO TOPIC GROUP
//
// SCENARIO is java-share or java-renew.
//
// java-share:
//  1. Admin createTopics TOPIC (1 partition), waiting until describeTopics
//     shows its leader; incrementalAlterConfigs on the GROUP config resource
//     GROUP: share.auto.offset.reset=earliest and
//     share.record.lock.duration.ms=20000 (above Kafka's default floor,
//     group.share.min.record.lock.duration.ms=15000); describeConfigs on
//     that resource answers both values;
//  2. KafkaProducer sends 100 records "j-000" ... "j-099" to partition 0
//     and waits for every ack;
//  3. two KafkaShareConsumers in GROUP, a thread each, poll and ACCEPT
//     every record (commitSync after every poll that returned records)
//     until together they have all 100: 100 distinct records, exactly the
//     produced ones at their acked offsets, each delivered once, every
//     deliveryCount() 1; acquisitionLockTimeoutMs() (the lock duration the
//     broker's ShareFetch answered) is 20000; both close;
//  4. "j-100" is produced; a new KafkaShareConsumer in GROUP gets only it
//     (the 100 were accepted), with deliveryCount 1, RELEASEs it
//     (commitSync), gets it again with deliveryCount 2, ACCEPTs it
//     (commitSync), and polls nothing more for 1 s.
//
// java-renew (KIP-1222: acquisition lock renewal and record_limit acquire
// mode, ShareFetch and ShareAcknowledge version 2; needs a broker with
// group.share.min.record.lock.duration.ms at most 3000):
//  1. as java-share's step 1, with share.record.lock.duration.ms=3000;
//  2. KafkaProducer sends 10 records "r-000" ... "r-009" to partition 0 in
//     one batch (linger.ms 1000, then flush): offsets 0 ... 9;
//  3. consumer A, a KafkaShareConsumer in GROUP with
//     share.acquire.mode=record_limit and max.poll.records=3, polls until
//     it gets records: exactly r-000, r-001, r-002 (offsets 0, 1, 2, not
//     the whole batch), each with deliveryCount 1; its
//     acquisitionLockTimeoutMs() is 3000; A closes. (Nothing after this
//     step reads GROUP: A's client may already have fetched the next 3
//     records ahead, a race inside the client.)
//  4. GROUP-renew gets the same two configs (incrementalAlterConfigs,
//     describeConfigs answers them); consumer H, a KafkaShareConsumer in
//     GROUP-renew with the default acquire mode (batch_optimized), polls
//     until it gets records: all 10, the whole batch, each with
//     deliveryCount 1. H holds every record, so no fetch ahead of H's
//     can take one.
//  5. consumer B, a KafkaShareConsumer in GROUP-renew, is created; then,
//     every 1 s, H acknowledges its 10 records with RENEW and commitSync
//     (every partition's result a success), B polls until the next
//     renewal and gets nothing, and H's next poll returns its 10 records
//     again (the client hands renewed records back), the same offsets and
//     nothing else; this goes on for 5 s, longer than the 3 s lock (had
//     the renewals not kept the locks, B would get the records back).
//  6. H ACCEPTs its 10 records (commitSync, every result a success); then
//     neither H nor B gets anything more for 1 s; both close.
//
// Prints one "ok ..." line per step, then "PASS SCENARIO", and exits 0,
// or "FAIL SCENARIO: ..." with what was expected and what came, and
// exits 1 (2 on bad arguments, 3 when the watchdog fires). Nothing printed
// depends on names, ids or timings (share_oracle.sh compares it with
// expected/share-java.txt and expected/share-java-renew.txt).
// SLUICE_CLIENT_LOG=debug (or trace, info) turns on the client's own log
// on stderr; the default is warn.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class ShareCheck {
    static final int RECORDS = 100;
    static final int LOCK_MS = 20000;
    /** Bound on every single client call that returns a future. */
    static final long CALL_TIMEOUT_S = 30;
    /** Bound on every consuming phase. */
    static final Duration CONSUME_DEADLINE = Duration.ofSeconds(60);
    /** How long the last consumer must poll without another record. */
    static final Duration QUIET = Duration.ofSeconds(1);
    /** java-renew: the records of the one produced batch. */
    static final int RENEW_RECORDS = 10;
    /** java-renew: the group's share.record.lock.duration.ms. */
    static final int RENEW_LOCK_MS = 3000;
    /** java-renew: consumer A's max.poll.records (record_limit). */
    static final int A_RECORDS = 3;
    /** java-renew: A renews this often ... */
    static final Duration RENEW_EVERY = Duration.ofSeconds(1);
    /** ... for at least this long (longer than the lock). */
    static final Duration RENEW_FOR = Duration.ofSeconds(5);
    /** The whole run; past it the JVM halts with status 3. */
    static final long WATCHDOG_S = 150;

    static final class Failure extends Exception {
        Failure(String message) {
            super(message);
        }
    }

    /** A delivered record: by which consumer, and its delivery count. */
    record Got(int member, long offset, String value, int deliveryCount) {}

    public static void main(String[] args) {
        // Before the first logger exists: slf4j-simple reads these once.
        String level = System.getenv().getOrDefault("SLUICE_CLIENT_LOG", "warn");
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", level);
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        System.setProperty("org.slf4j.simpleLogger.showDateTime", "true");
        System.setProperty("org.slf4j.simpleLogger.dateTimeFormat", "HH:mm:ss.SSS");

        if (args.length != 4 || !(args[1].equals("java-share") || args[1].equals("java-renew"))) {
            System.err.println("usage: ShareCheck BOOTSTRAP java-share|java-renew TOPIC GROUP");
            System.exit(2);
        }
        String bootstrap = args[0];
        String scenario = args[1];
        String topic = args[2];
        String group = args[3];

        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(TimeUnit.SECONDS.toMillis(WATCHDOG_S));
            } catch (InterruptedException e) {
                return;
            }
            System.out.println("FAIL " + scenario + ": watchdog: still running after " + WATCHDOG_S + " s");
            System.out.flush();
            Runtime.getRuntime().halt(3);
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();

        long start = System.nanoTime();
        int status;
        try {
            if (scenario.equals("java-share")) {
                javaShare(bootstrap, topic, group);
            } else {
                javaRenew(bootstrap, topic, group);
            }
            System.out.println("PASS " + scenario);
            status = 0;
        } catch (Failure f) {
            System.out.println("FAIL " + scenario + ": " + f.getMessage());
            status = 1;
        } catch (Throwable t) {
            System.out.println("FAIL " + scenario + ": unexpected " + t);
            t.printStackTrace(System.out);
            status = 1;
        }
        System.err.printf("%s took %d ms%n", scenario, (System.nanoTime() - start) / 1_000_000);
        System.out.flush();
        // halt, not exit: a client thread stuck in a shutdown hook must not
        // keep the process alive.
        Runtime.getRuntime().halt(status);
    }

    static void ok(String what) {
        System.out.println("ok " + what);
        System.out.flush();
    }

    static void check(boolean condition, String message) throws Failure {
        if (!condition) {
            throw new Failure(message);
        }
    }

    /** Waits for `future`; a timeout or an error is a Failure naming `what`. */
    static <T> T await(String what, Future<T> future) throws Failure, InterruptedException {
        try {
            return future.get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            throw new Failure(what + ": no answer within " + CALL_TIMEOUT_S + " s");
        } catch (ExecutionException e) {
            throw new Failure(what + ": " + e.getCause());
        }
    }

    static Properties commonConfig(String bootstrap) {
        Properties common = new Properties();
        common.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        common.put(AdminClientConfig.CLIENT_ID_CONFIG, "sluice-share-check");
        common.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, String.valueOf(CALL_TIMEOUT_S * 1000));
        return common;
    }

    static KafkaShareConsumer<String, String> shareConsumer(Properties common, String topic, String group) {
        return shareConsumer(common, topic, group, new Properties());
    }

    /** A subscribed explicit-acknowledgement share consumer; `extra` is
     *  added to its config. */
    static KafkaShareConsumer<String, String> shareConsumer(Properties common, String topic, String group,
            Properties extra) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, common.get(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG));
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, "sluice-share-check");
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.SHARE_ACKNOWLEDGEMENT_MODE_CONFIG, "explicit");
        props.putAll(extra);
        KafkaShareConsumer<String, String> c =
                new KafkaShareConsumer<>(props, new StringDeserializer(), new StringDeserializer());
        c.subscribe(List.of(topic));
        return c;
    }

    /** commitSync; every partition's result must be a success. */
    static void commit(KafkaShareConsumer<String, String> c, String who) throws Failure {
        Map<TopicIdPartition, Optional<KafkaException>> result = c.commitSync(Duration.ofSeconds(CALL_TIMEOUT_S));
        for (Map.Entry<TopicIdPartition, Optional<KafkaException>> e : result.entrySet()) {
            check(e.getValue().isEmpty(), who + ": commitSync " + e.getKey() + ": " + e.getValue().orElse(null));
        }
    }

    static String value(int i) {
        return String.format("j-%03d", i);
    }

    /** Step 1 of both scenarios: TOPIC with 1 partition (its leader known),
     *  and GROUP's share.auto.offset.reset=earliest and
     *  share.record.lock.duration.ms=lockMs, as describeConfigs answers. */
    static void createTopicAndGroupConfig(Properties common, String topic, String group, int lockMs)
            throws Exception {
        try (Admin admin = Admin.create(common)) {
            await("createTopics", admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all());
            long deadline = System.nanoTime() + CONSUME_DEADLINE.toNanos();
            while (true) {
                TopicDescription d = null;
                try {
                    d = admin.describeTopics(List.of(topic)).allTopicNames().get(CALL_TIMEOUT_S, TimeUnit.SECONDS).get(topic);
                } catch (ExecutionException e) {
                    // not known yet
                }
                if (d != null && d.partitions().size() == 1 && d.partitions().get(0).leader() != null) {
                    break;
                }
                check(System.nanoTime() < deadline, "describeTopics: " + topic + " has no leader");
                Thread.sleep(100);
            }
            ok("createTopics with 1 partition");

            setGroupConfig(admin, group, lockMs);
        }
    }


    static void javaShare(String bootstrap, String topic, String group) throws Exception {
        Properties common = commonConfig(bootstrap);
        createTopicAndGroupConfig(common, topic, group, LOCK_MS);

        Map<Long, String> produced = produce(common, topic, values("j", 0, RECORDS), 5);
        ok("produced " + RECORDS + " records");

        // Two consumers, a thread each (a KafkaShareConsumer is single-threaded).
        List<Got> got = Collections.synchronizedList(new ArrayList<>());
        AtomicBoolean done = new AtomicBoolean();
        List<String> failures = Collections.synchronizedList(new ArrayList<>());
        Map<Integer, Optional<Integer>> lockTimeouts = new TreeMap<>();
        List<Thread> threads = new ArrayList<>();
        for (int m = 0; m < 2; m++) {
            final int member = m;
            Thread t = new Thread(() -> {
                try (KafkaShareConsumer<String, String> c = shareConsumer(common, topic, group)) {
                    long deadline = System.nanoTime() + CONSUME_DEADLINE.toNanos();
                    while (!done.get()) {
                        check(System.nanoTime() < deadline, "consumer " + member + ": the " + RECORDS
                                + " records not all consumed within " + CONSUME_DEADLINE.toSeconds() + " s");
                        int n = 0;
                        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                            got.add(new Got(member, r.offset(), r.value(), r.deliveryCount().map(Short::intValue).orElse(-1)));
                            c.acknowledge(r, AcknowledgeType.ACCEPT);
                            n++;
                        }
                        if (n > 0) {
                            commit(c, "consumer " + member);
                        }
                        synchronized (got) {
                            if (got.stream().map(Got::offset).distinct().count() >= RECORDS) {
                                done.set(true);
                            }
                        }
                    }
                    synchronized (lockTimeouts) {
                        lockTimeouts.put(member, c.acquisitionLockTimeoutMs());
                    }
                } catch (Throwable e) {
                    failures.add("consumer " + member + ": " + e);
                    done.set(true);
                }
            }, "share-consumer-" + m);
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) {
            t.join(CONSUME_DEADLINE.toMillis() + 30_000);
            check(!t.isAlive(), t.getName() + " did not end");
        }
        check(failures.isEmpty(), String.join("; ", failures));
        Map<Long, String> distinct = new TreeMap<>();
        Map<Integer, Integer> counts = new TreeMap<>();
        for (Got g : got) {
            distinct.put(g.offset(), g.value());
            counts.merge(g.deliveryCount(), 1, Integer::sum);
        }
        System.err.println("records per consumer: "
                + got.stream().filter(g -> g.member() == 0).count() + " "
                + got.stream().filter(g -> g.member() == 1).count());
        check(distinct.equals(new TreeMap<>(produced)),
                "the consumers got " + distinct + ", expected " + new TreeMap<>(produced));
        check(got.size() == RECORDS, got.size() + " deliveries of " + RECORDS + " records: " + got);
        check(counts.equals(Map.of(1, RECORDS)), "delivery counts " + counts);
        ok("2 share consumers accepted " + got.size() + " deliveries: " + distinct.size()
                + " distinct records, every produced one, each delivered once with deliveryCount 1");
        Optional<Integer> lock = lockTimeouts.values().stream().filter(Optional::isPresent).findFirst()
                .orElse(Optional.empty());
        check(lock.isPresent() && lock.get() == LOCK_MS,
                "acquisitionLockTimeoutMs " + lockTimeouts + ", expected " + LOCK_MS);
        ok("acquisitionLockTimeoutMs " + lock.get());
        System.err.println("acquisitionLockTimeoutMs by consumer: " + lockTimeouts);

        Map<Long, String> last = produce(common, topic, values("j", RECORDS, 1), 5);
        long lastOffset = last.keySet().iterator().next();
        try (KafkaShareConsumer<String, String> c = shareConsumer(common, topic, group)) {
            Got first = pollOne(c, "first delivery", AcknowledgeType.RELEASE);
            check(first.offset() == lastOffset && first.value().equals(value(RECORDS)) && first.deliveryCount() == 1,
                    "first delivery: " + first + ", expected " + value(RECORDS) + " at " + lastOffset + " with deliveryCount 1");
            ok("a new consumer gets only " + first.value() + ", deliveryCount " + first.deliveryCount() + "; RELEASE");
            Got again = pollOne(c, "second delivery", AcknowledgeType.ACCEPT);
            check(again.offset() == lastOffset && again.deliveryCount() == 2,
                    "second delivery: " + again + ", expected offset " + lastOffset + " with deliveryCount 2");
            ok("it comes back: " + again.value() + ", deliveryCount " + again.deliveryCount() + "; ACCEPT");
            long quietEnd = System.nanoTime() + QUIET.toNanos();
            while (System.nanoTime() < quietEnd) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    throw new Failure("after the ACCEPT: " + r.value() + " at " + r.offset()
                            + " with deliveryCount " + r.deliveryCount());
                }
            }
            ok("then nothing more for " + QUIET.toSeconds() + " s");
        }
    }

    static void javaRenew(String bootstrap, String topic, String group) throws Exception {
        Properties common = commonConfig(bootstrap);
        createTopicAndGroupConfig(common, topic, group, RENEW_LOCK_MS);

        List<String> values = values("r", 0, RENEW_RECORDS);
        Map<Long, String> produced = new TreeMap<>(produce(common, topic, values, 1000));
        Map<Long, String> wantedOffsets = new TreeMap<>();
        for (int i = 0; i < RENEW_RECORDS; i++) {
            wantedOffsets.put((long) i, values.get(i));
        }
        check(produced.equals(wantedOffsets), "produced " + produced + ", expected " + wantedOffsets);
        ok("produced " + RENEW_RECORDS + " records " + values.get(0) + ".." + values.get(RENEW_RECORDS - 1)
                + " in one batch (linger.ms 1000, flush) at offsets 0.." + (RENEW_RECORDS - 1));

        Properties aConfig = new Properties();
        aConfig.put(ConsumerConfig.SHARE_ACQUIRE_MODE_CONFIG, "record_limit");
        aConfig.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, String.valueOf(A_RECORDS));
        try (KafkaShareConsumer<String, String> a = shareConsumer(common, topic, group, aConfig)) {
            // 3. A's first records: exactly the first max.poll.records of the batch.
            List<ConsumerRecord<String, String>> got = pollSome(a, "consumer A's first poll", CONSUME_DEADLINE);
            List<Long> aOffsets = List.of(0L, 1L, 2L);
            check(offsets(got).equals(aOffsets) && values(got).equals(values.subList(0, A_RECORDS)),
                    "consumer A (record_limit, max.poll.records " + A_RECORDS + ") got " + got.size()
                    + " records " + values(got) + " at offsets " + offsets(got) + ", expected "
                    + values.subList(0, A_RECORDS) + " at " + aOffsets);
            check(deliveryCounts(got).equals(List.of(1, 1, 1)), "consumer A: delivery counts " + deliveryCounts(got));
            ok("consumer A (share.acquire.mode=record_limit, max.poll.records=" + A_RECORDS + ") gets "
                    + got.size() + " records: " + String.join(" ", values(got)) + ", deliveryCount 1");
            Optional<Integer> lock = a.acquisitionLockTimeoutMs();
            check(lock.isPresent() && lock.get() == RENEW_LOCK_MS,
                    "consumer A: acquisitionLockTimeoutMs " + lock + ", expected " + RENEW_LOCK_MS);
            ok("acquisitionLockTimeoutMs " + lock.get());
        }

        // 4. A fresh group, where H takes the whole batch.
        String renewGroup = group + "-renew";
        try (Admin admin = Admin.create(common)) {
            setGroupConfig(admin, renewGroup, RENEW_LOCK_MS);
        }
        try (KafkaShareConsumer<String, String> h = shareConsumer(common, topic, renewGroup)) {
            List<ConsumerRecord<String, String>> held = pollSome(h, "consumer H's first poll", CONSUME_DEADLINE);
            List<Long> hOffsets = new ArrayList<>(wantedOffsets.keySet());
            check(offsets(held).equals(hOffsets) && values(held).equals(values),
                    "consumer H got " + values(held) + " at offsets " + offsets(held) + ", expected " + values
                    + " at " + hOffsets);
            check(deliveryCounts(held).equals(Collections.nCopies(RENEW_RECORDS, 1)),
                    "consumer H: delivery counts " + deliveryCounts(held));
            ok("in a second group consumer H (default acquire mode) gets the whole batch: " + held.size()
                    + " records, deliveryCount 1");

            // 5. H renews every second; B gets nothing.
            try (KafkaShareConsumer<String, String> b = shareConsumer(common, topic, renewGroup)) {
                long phaseStart = System.nanoTime();
                int renewals = 0;
                while (System.nanoTime() - phaseStart < RENEW_FOR.toNanos()) {
                    for (ConsumerRecord<String, String> r : held) {
                        h.acknowledge(r, AcknowledgeType.RENEW);
                    }
                    commit(h, "consumer H: RENEW " + (renewals + 1));
                    renewals++;
                    long nextRenewal = System.nanoTime() + RENEW_EVERY.toNanos();
                    while (System.nanoTime() < nextRenewal) {
                        for (ConsumerRecord<String, String> r : b.poll(Duration.ofMillis(100))) {
                            throw new Failure("consumer B got " + r.value() + " at " + r.offset()
                                    + " with deliveryCount " + r.deliveryCount() + " while consumer H holds it"
                                    + " and has renewed it " + renewals + " times, "
                                    + (System.nanoTime() - phaseStart) / 1_000_000 + " ms after the first RENEW");
                        }
                    }
                    // The client hands successfully renewed records back on the next poll.
                    List<ConsumerRecord<String, String>> back =
                            pollSome(h, "consumer H after RENEW " + renewals, Duration.ofMillis(RENEW_LOCK_MS / 2));
                    check(offsets(back).equals(hOffsets), "consumer H after RENEW " + renewals
                            + ": poll returned offsets " + offsets(back) + ", expected its renewed " + hOffsets);
                    held = back;
                }
                System.err.printf("renewal phase: %d renewals in %d ms%n", renewals,
                        (System.nanoTime() - phaseStart) / 1_000_000);
                ok("consumer H RENEWs its " + RENEW_RECORDS + " records (commitSync) every "
                        + RENEW_EVERY.toSeconds() + " s for " + RENEW_FOR.toSeconds() + " s, longer than the "
                        + RENEW_LOCK_MS + " ms lock: every commitSync succeeds and H's next poll returns the same "
                        + RENEW_RECORDS + " records");
                ok("meanwhile consumer B (same group) gets none of them");

                // 6. H accepts; nothing is left for anyone.
                for (ConsumerRecord<String, String> r : held) {
                    h.acknowledge(r, AcknowledgeType.ACCEPT);
                }
                commit(h, "consumer H: ACCEPT");
                ok("consumer H ACCEPTs its " + RENEW_RECORDS + " records (commitSync succeeds)");
                long quietEnd = System.nanoTime() + QUIET.toNanos();
                while (System.nanoTime() < quietEnd) {
                    for (KafkaShareConsumer<String, String> c : List.of(h, b)) {
                        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
                            throw new Failure("after H's ACCEPT consumer " + (c == h ? "H" : "B") + " got " + r.value()
                                    + " at " + r.offset() + " with deliveryCount " + r.deliveryCount());
                        }
                    }
                }
                ok("then neither consumer gets anything more for " + QUIET.toSeconds() + " s");
            }
        }
    }

    static List<Long> offsets(List<ConsumerRecord<String, String>> records) {
        List<Long> out = new ArrayList<>();
        records.forEach(r -> out.add(r.offset()));
        return out;
    }

    static List<String> values(List<ConsumerRecord<String, String>> records) {
        List<String> out = new ArrayList<>();
        records.forEach(r -> out.add(r.value()));
        return out;
    }

    static List<Integer> deliveryCounts(List<ConsumerRecord<String, String>> records) {
        List<Integer> out = new ArrayList<>();
        records.forEach(r -> out.add(r.deliveryCount().map(Short::intValue).orElse(-1)));
        return out;
    }

    /** GROUP's share.auto.offset.reset=earliest and
     *  share.record.lock.duration.ms=lockMs, as describeConfigs answers. */
    static void setGroupConfig(Admin admin, String group, int lockMs) throws Exception {
        ConfigResource resource = new ConfigResource(ConfigResource.Type.GROUP, group);
        Map<String, String> wanted = new TreeMap<>(Map.of(
                "share.auto.offset.reset", "earliest",
                "share.record.lock.duration.ms", String.valueOf(lockMs)));
        List<AlterConfigOp> ops = new ArrayList<>();
        wanted.forEach((k, v) -> ops.add(new AlterConfigOp(new ConfigEntry(k, v), AlterConfigOp.OpType.SET)));
        await("incrementalAlterConfigs", admin.incrementalAlterConfigs(Map.of(resource, ops)).all());
        Config config = await("describeConfigs", admin.describeConfigs(List.of(resource)).all()).get(resource);
        check(config != null, "describeConfigs: no config for the group");
        StringBuilder shown = new StringBuilder();
        for (Map.Entry<String, String> e : wanted.entrySet()) {
            ConfigEntry entry = config.get(e.getKey());
            check(entry != null && e.getValue().equals(entry.value()),
                    "describeConfigs: " + e.getKey() + " is " + entry + ", expected " + e.getValue());
            shown.append(' ').append(e.getKey()).append('=').append(entry.value());
        }
        ok("incrementalAlterConfigs on the GROUP resource, describeConfigs answers" + shown);
    }

    /** Polls (without acknowledging) until records arrive; nothing within
     *  `within` is a Failure. */
    static List<ConsumerRecord<String, String>> pollSome(KafkaShareConsumer<String, String> c, String what,
            Duration within) throws Failure {
        long deadline = System.nanoTime() + within.toNanos();
        while (true) {
            check(System.nanoTime() < deadline, what + ": nothing within " + within.toMillis() + " ms");
            List<ConsumerRecord<String, String>> batch = new ArrayList<>();
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
                batch.add(r);
            }
            if (!batch.isEmpty()) {
                return batch;
            }
        }
    }

    /** Polls until exactly one record arrives, acknowledges it with `ack`
     *  and commits; more than one record is a Failure. */
    static Got pollOne(KafkaShareConsumer<String, String> c, String what, AcknowledgeType ack) throws Failure {
        long deadline = System.nanoTime() + CONSUME_DEADLINE.toNanos();
        while (true) {
            check(System.nanoTime() < deadline, what + ": nothing within " + CONSUME_DEADLINE.toSeconds() + " s");
            List<Got> batch = new ArrayList<>();
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                batch.add(new Got(0, r.offset(), r.value(), r.deliveryCount().map(Short::intValue).orElse(-1)));
                c.acknowledge(r, ack);
            }
            if (batch.isEmpty()) {
                continue;
            }
            commit(c, what);
            check(batch.size() == 1, what + ": expected one record, got " + batch);
            return batch.get(0);
        }
    }

    /** "PREFIX-000" style values from..from+count-1. */
    static List<String> values(String prefix, int from, int count) {
        List<String> values = new ArrayList<>();
        for (int i = from; i < from + count; i++) {
            values.add(String.format("%s-%03d", prefix, i));
        }
        return values;
    }

    /** Sends `values` to partition 0 with linger.ms `lingerMs`, flushes,
     *  and waits for every ack; their offsets. */
    static Map<Long, String> produce(Properties common, String topic, List<String> values, int lingerMs)
            throws Exception {
        Properties props = new Properties();
        props.putAll(common);
        props.put(ProducerConfig.LINGER_MS_CONFIG, String.valueOf(lingerMs));
        Map<Long, String> offsets = new HashMap<>();
        try (KafkaProducer<String, String> p = new KafkaProducer<>(props, new StringSerializer(), new StringSerializer())) {
            List<Future<RecordMetadata>> acks = new ArrayList<>();
            for (String v : values) {
                acks.add(p.send(new ProducerRecord<>(topic, 0, null, v)));
            }
            p.flush();
            for (int i = 0; i < values.size(); i++) {
                RecordMetadata md = await("send " + values.get(i), acks.get(i));
                offsets.put(md.offset(), values.get(i));
            }
        }
        return offsets;
    }
}
