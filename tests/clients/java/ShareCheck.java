// Share groups (KIP-932, queues for Kafka) with the reference Java client's
// KafkaShareConsumer, explicit acknowledgement
// (share.acknowledgement.mode=explicit).
//
// Run as a single-file source program, after `mvn dependency:copy-dependencies`
// in this directory:
//
//   java -cp 'target/dependency/*' ShareCheck.java BOOTSTRAP java-share TOPIC GROUP
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
// Prints one "ok ..." line per step, then "PASS java-share", and exits 0,
// or "FAIL java-share: ..." with what was expected and what came, and
// exits 1 (2 on bad arguments, 3 when the watchdog fires). Nothing printed
// depends on names, ids or timings (share_oracle.sh compares it with
// expected/share-java.txt). SLUICE_CLIENT_LOG=debug (or trace, info)
// turns on the client's own log on stderr; the default is warn.

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

        if (args.length != 4 || !args[1].equals("java-share")) {
            System.err.println("usage: ShareCheck BOOTSTRAP java-share TOPIC GROUP");
            System.exit(2);
        }
        String bootstrap = args[0];
        String topic = args[2];
        String group = args[3];

        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(TimeUnit.SECONDS.toMillis(WATCHDOG_S));
            } catch (InterruptedException e) {
                return;
            }
            System.out.println("FAIL java-share: watchdog: still running after " + WATCHDOG_S + " s");
            System.out.flush();
            Runtime.getRuntime().halt(3);
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();

        long start = System.nanoTime();
        int status;
        try {
            javaShare(bootstrap, topic, group);
            System.out.println("PASS java-share");
            status = 0;
        } catch (Failure f) {
            System.out.println("FAIL java-share: " + f.getMessage());
            status = 1;
        } catch (Throwable t) {
            System.out.println("FAIL java-share: unexpected " + t);
            t.printStackTrace(System.out);
            status = 1;
        }
        System.err.printf("java-share took %d ms%n", (System.nanoTime() - start) / 1_000_000);
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
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, common.get(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG));
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, "sluice-share-check");
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.SHARE_ACKNOWLEDGEMENT_MODE_CONFIG, "explicit");
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

    static void javaShare(String bootstrap, String topic, String group) throws Exception {
        Properties common = commonConfig(bootstrap);
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

            ConfigResource resource = new ConfigResource(ConfigResource.Type.GROUP, group);
            Map<String, String> wanted = new TreeMap<>(Map.of(
                    "share.auto.offset.reset", "earliest",
                    "share.record.lock.duration.ms", String.valueOf(LOCK_MS)));
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

        Map<Long, String> produced = produce(common, topic, 0, RECORDS);
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

        Map<Long, String> last = produce(common, topic, RECORDS, 1);
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

    /** Sends values from..from+count-1 to partition 0; their offsets. */
    static Map<Long, String> produce(Properties common, String topic, int from, int count) throws Exception {
        Properties props = new Properties();
        props.putAll(common);
        props.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        Map<Long, String> offsets = new HashMap<>();
        try (KafkaProducer<String, String> p = new KafkaProducer<>(props, new StringSerializer(), new StringSerializer())) {
            List<Future<RecordMetadata>> acks = new ArrayList<>();
            for (int i = from; i < from + count; i++) {
                acks.add(p.send(new ProducerRecord<>(topic, 0, null, value(i))));
            }
            for (int i = 0; i < count; i++) {
                RecordMetadata md = await("send " + value(from + i), acks.get(i));
                offsets.put(md.offset(), value(from + i));
            }
        }
        return offsets;
    }
}
