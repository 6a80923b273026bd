// Drives a sluice broker with the reference Java client (kafka-clients),
// with the client's defaults (idempotent producer, acks=all).
//
// Run as a single-file source program, after `mvn dependency:copy-dependencies`
// in this directory:
//
//   java -cp 'target/dependency/*' SluiceClientCheck.java BOOTSTRAP roundtrip [TOPIC]
//
// roundtrip: Admin createTopics (3 partitions), describeTopics, listTopics;
// KafkaProducer sends 1000 keyed records over the partitions and waits for
// every ack; KafkaConsumer (no group: assign + seekToBeginning) reads them
// all back, checking content, offsets and per-partition order;
// Admin deleteTopics, then listTopics no longer names the topic.
//
// Prints one "ok ..." line per step, then "PASS ..." and exits 0, or
// "FAIL ..." with what was expected and what came, and exits 1 (2 on bad
// arguments, 3 when the watchdog fires). SLUICE_CLIENT_LOG=debug (or trace,
// info) turns on the client's own log on stderr; the default is warn.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class SluiceClientCheck {
    static final int PARTITIONS = 3;
    static final int RECORDS = 1000;
    /** Bound on every single client call that returns a future. */
    static final long CALL_TIMEOUT_S = 30;
    /** Bound on reading everything back. */
    static final Duration CONSUME_DEADLINE = Duration.ofSeconds(60);
    /** The whole run; past it the JVM halts with status 3. */
    static final long WATCHDOG_S = 150;

    static final class Failure extends Exception {
        Failure(String message) {
            super(message);
        }
    }

    /** A produced record: where the broker said it went. */
    record Sent(int index, int partition, long offset) {}

    public static void main(String[] args) {
        // Before the first logger exists: slf4j-simple reads these once.
        String level = System.getenv().getOrDefault("SLUICE_CLIENT_LOG", "warn");
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", level);
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        System.setProperty("org.slf4j.simpleLogger.showDateTime", "true");
        System.setProperty("org.slf4j.simpleLogger.dateTimeFormat", "HH:mm:ss.SSS");

        if (args.length < 2 || args.length > 3) {
            System.err.println("usage: SluiceClientCheck BOOTSTRAP roundtrip [TOPIC]");
            System.exit(2);
        }
        String bootstrap = args[0];
        String mode = args[1];
        String topic = args.length == 3 ? args[2] : "java-check-" + ProcessHandle.current().pid();

        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(TimeUnit.SECONDS.toMillis(WATCHDOG_S));
            } catch (InterruptedException e) {
                return;
            }
            System.out.println("FAIL java kafka-clients: watchdog: still running after " + WATCHDOG_S + " s");
            System.out.flush();
            Runtime.getRuntime().halt(3);
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();

        long start = System.nanoTime();
        int status;
        try {
            switch (mode) {
                case "roundtrip" -> roundtrip(bootstrap, topic);
                default -> {
                    System.err.println("unknown mode " + mode + " (expected roundtrip)");
                    System.exit(2);
                }
            }
            System.out.printf("PASS java kafka-clients %s %s in %d ms%n",
                    clientVersion(), mode, (System.nanoTime() - start) / 1_000_000);
            status = 0;
        } catch (Failure f) {
            System.out.println("FAIL java kafka-clients " + clientVersion() + " " + mode + ": " + f.getMessage());
            status = 1;
        } catch (Throwable t) {
            System.out.println("FAIL java kafka-clients " + clientVersion() + " " + mode + ": unexpected " + t);
            t.printStackTrace(System.out);
            status = 1;
        }
        System.out.flush();
        // halt, not exit: a client thread stuck in a shutdown hook must not
        // keep the process alive.
        Runtime.getRuntime().halt(status);
    }

    /** The kafka-clients version, from the properties file in its jar. */
    static String clientVersion() {
        try (var in = KafkaProducer.class.getResourceAsStream("/kafka/kafka-version.properties")) {
            Properties p = new Properties();
            if (in != null) {
                p.load(in);
            }
            return p.getProperty("version", "unknown");
        } catch (java.io.IOException e) {
            return "unknown";
        }
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

    /** The i-th test record, the same as message(i) in tests/common. */
    static byte[] key(int i) {
        return ("key-" + i).getBytes(StandardCharsets.UTF_8);
    }

    static byte[] value(int i) {
        return ("value-" + i + "-" + "abcdefgh".repeat(i % 50)).getBytes(StandardCharsets.UTF_8);
    }

    static String show(byte[] b) {
        return b == null ? "null" : "\"" + new String(b, StandardCharsets.UTF_8) + "\"";
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

    static void roundtrip(String bootstrap, String topic) throws Exception {
        Properties common = new Properties();
        common.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        common.put(AdminClientConfig.CLIENT_ID_CONFIG, "sluice-java-check");

        common.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, String.valueOf(CALL_TIMEOUT_S * 1000));
        Admin admin = Admin.create(common);
        try {
            await("createTopics", admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all());
            ok("createTopics " + topic + " with " + PARTITIONS + " partitions");

            TopicDescription description =
                    await("describeTopics", admin.describeTopics(List.of(topic)).allTopicNames()).get(topic);
            check(description != null, "describeTopics: no description of " + topic);
            check(description.name().equals(topic), "describeTopics: name " + description.name());
            check(!description.isInternal(), "describeTopics: " + topic + " is internal");
            check(description.topicId() != null && !description.topicId().equals(org.apache.kafka.common.Uuid.ZERO_UUID),
                    "describeTopics: topic id " + description.topicId());
            List<TopicPartitionInfo> partitions = description.partitions();
            check(partitions.size() == PARTITIONS,
                    "describeTopics: expected " + PARTITIONS + " partitions, got " + partitions);
            for (int p = 0; p < PARTITIONS; p++) {
                TopicPartitionInfo info = partitions.get(p);
                check(info.partition() == p, "describeTopics: partition " + p + " is " + info);
                check(info.leader() != null && info.leader().id() == 0,
                        "describeTopics: partition " + p + " leader " + info.leader());
                check(info.replicas().size() == 1 && info.isr().size() == 1,
                        "describeTopics: partition " + p + " replicas " + info.replicas() + " isr " + info.isr());
            }
            ok("describeTopics: " + PARTITIONS + " partitions led by broker 0, topic id " + description.topicId());

            Set<String> names = await("listTopics", admin.listTopics().names());
            check(names.contains(topic), "listTopics: expected " + topic + " in " + names);
            ok("listTopics names " + topic);

            List<Sent> sent = produce(common, topic);
            consume(common, topic, sent);

            await("deleteTopics", admin.deleteTopics(List.of(topic)).all());
            ok("deleteTopics " + topic);
            // Deleting is eventually visible in Kafka; allow a short while.
            long deleted = System.nanoTime();
            while (true) {
                Set<String> after = await("listTopics after deleteTopics", admin.listTopics().names());
                if (!after.contains(topic)) {
                    break;
                }
                check(System.nanoTime() - deleted < TimeUnit.SECONDS.toNanos(10),
                        "listTopics 10 s after deleteTopics still names " + topic + ": " + after);
                Thread.sleep(100);
            }
            ok("listTopics no longer names " + topic + " (after "
                    + (System.nanoTime() - deleted) / 1_000_000 + " ms)");
        } finally {
            admin.close(Duration.ofSeconds(5));
        }
    }

    static List<Sent> produce(Properties common, String topic) throws Exception {
        Properties props = new Properties();
        props.putAll(common);
        props.put(ProducerConfig.CLIENT_ID_CONFIG, "sluice-java-check-producer");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        // Bounds how long a send may wait for metadata or an ack.
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        List<Sent> sent = new ArrayList<>(RECORDS);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            List<Future<RecordMetadata>> acks = new ArrayList<>(RECORDS);
            for (int i = 0; i < RECORDS; i++) {
                acks.add(producer.send(new ProducerRecord<>(topic, key(i), value(i))));
            }
            producer.flush();
            for (int i = 0; i < RECORDS; i++) {
                RecordMetadata m = await("send of record " + i, acks.get(i));
                check(m.topic().equals(topic), "record " + i + " acked for topic " + m.topic());
                check(m.hasOffset(), "record " + i + " acked without an offset");
                sent.add(new Sent(i, m.partition(), m.offset()));
            }
            producer.close(Duration.ofSeconds(CALL_TIMEOUT_S));
        }
        // The producer sends in order and is idempotent: each partition's
        // offsets are 0, 1, 2, ... in send order.
        Map<Integer, Long> next = new TreeMap<>();
        for (Sent s : sent) {
            long expected = next.getOrDefault(s.partition(), 0L);
            check(s.offset() == expected, "record " + s.index() + " acked at partition " + s.partition()
                    + " offset " + s.offset() + ", expected offset " + expected);
            next.put(s.partition(), expected + 1);
        }
        check(next.size() == PARTITIONS, "1000 keys went to partitions " + next.keySet() + " only");
        ok("produced " + RECORDS + " records, acked with contiguous offsets per partition " + next);
        return sent;
    }

    static void consume(Properties common, String topic, List<Sent> sent) throws Exception {
        Properties props = new Properties();
        props.putAll(common);
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, "sluice-java-check-consumer");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, String.valueOf(CALL_TIMEOUT_S * 1000));

        // What each partition must hold, in order.
        Map<Integer, List<Sent>> expected = new TreeMap<>();
        for (Sent s : sent) {
            expected.computeIfAbsent(s.partition(), p -> new ArrayList<>()).add(s);
        }
        List<TopicPartition> tps = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) {
            tps.add(new TopicPartition(topic, p));
        }
        Map<Integer, Integer> got = new HashMap<>();
        int total = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            consumer.assign(tps);
            consumer.seekToBeginning(tps);

            Map<TopicPartition, Long> beginning = consumer.beginningOffsets(tps);
            Map<TopicPartition, Long> end = consumer.endOffsets(tps);
            for (TopicPartition tp : tps) {
                long want = expected.getOrDefault(tp.partition(), List.of()).size();
                check(beginning.get(tp) == 0L, "beginningOffsets " + tp + ": " + beginning.get(tp) + ", expected 0");
                check(end.get(tp) == want, "endOffsets " + tp + ": " + end.get(tp) + ", expected " + want);
            }
            Map<Integer, Long> ends = new TreeMap<>();
            end.forEach((tp, offset) -> ends.put(tp.partition(), offset));
            ok("beginningOffsets all 0, endOffsets " + ends);

            long deadline = System.nanoTime() + CONSUME_DEADLINE.toNanos();
            while (total < RECORDS) {
                check(System.nanoTime() < deadline, "consumed " + total + " of " + RECORDS + " records within "
                        + CONSUME_DEADLINE + " (per partition " + got + ")");
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    int p = r.partition();
                    int n = got.getOrDefault(p, 0);
                    List<Sent> want = expected.getOrDefault(p, List.of());
                    check(n < want.size(), "partition " + p + ": record beyond the " + want.size()
                            + " produced, at offset " + r.offset());
                    Sent s = want.get(n);
                    check(r.offset() == s.offset(), "partition " + p + ": record " + n + " at offset "
                            + r.offset() + ", expected offset " + s.offset());
                    check(Arrays.equals(r.key(), key(s.index())), "partition " + p + " offset " + r.offset()
                            + ": key " + show(r.key()) + ", expected " + show(key(s.index())));
                    check(Arrays.equals(r.value(), value(s.index())), "partition " + p + " offset " + r.offset()
                            + ": value " + show(r.value()) + ", expected " + show(value(s.index())));
                    check(r.headers().toArray().length == 0, "partition " + p + " offset " + r.offset()
                            + ": unexpected headers " + r.headers());
                    check(r.timestamp() > 0, "partition " + p + " offset " + r.offset()
                            + ": timestamp " + r.timestamp());
                    got.put(p, n + 1);
                    total++;
                }
            }
            // Nothing after the last record.
            Collection<ConsumerRecord<byte[], byte[]>> extra = new ArrayList<>();
            consumer.poll(Duration.ofMillis(500)).forEach(extra::add);
            check(extra.isEmpty(), extra.size() + " records after the " + RECORDS + " produced");
        }
        ok("consumed " + RECORDS + " records (assign + seekToBeginning), content and per-partition order exact "
                + new TreeMap<>(got));
    }
}
