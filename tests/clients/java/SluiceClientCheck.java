// Drives a sluice broker with the reference Java client (kafka-clients),
// with the client's defaults (idempotent producer, acks=all).
//
// Run as a single-file source program, after `mvn dependency:copy-dependencies`
// in this directory:
//
//   java -cp 'target/dependency/*' SluiceClientCheck.java BOOTSTRAP roundtrip [TOPIC]
//   java -cp 'target/dependency/*' SluiceClientCheck.java BOOTSTRAP group [TOPIC [GROUP]]
//   java -cp 'target/dependency/*' SluiceClientCheck.java BOOTSTRAP cluster [TOPIC]
//   java -cp 'target/dependency/*' SluiceClientCheck.java BOOTSTRAP txn [TOPIC]
//
// roundtrip: Admin createTopics (3 partitions), describeTopics, listTopics;
// KafkaProducer sends 1000 keyed records over the partitions and waits for
// every ack; KafkaConsumer (no group: assign + seekToBeginning) reads them
// all back, checking content, offsets and per-partition order;
// Admin deleteTopics, then listTopics no longer names the topic.
//
// group: Admin createTopics (3 partitions) and the same 1000 records, then
// KafkaConsumers in consumer groups (the classic group protocol, subscribe,
// auto.offset.reset=earliest, enable.auto.commit=false):
//  1. one consumer in GROUP polls until it has every record exactly once
//     (content, offsets and per-partition order checked as in roundtrip),
//     assigned all 3 partitions; commitSync(); committed() equals the end
//     offsets; Admin describeConsumerGroups shows GROUP Stable with it as
//     the only member, assigned all 3 partitions; it closes (LeaveGroup),
//     and describeConsumerGroups shows GROUP Empty, listGroups names it,
//     listConsumerGroupOffsets answers the end offsets;
//  2. a new consumer in GROUP is assigned all 3 partitions, starts at the
//     committed offsets (position() = end offsets) and polls no record
//     for 3 s; it closes and the commits are unchanged;
//  3. two consumers in GROUP-2, polled in turn from one thread, each get
//     a non-empty share of the partitions, each partition goes to exactly
//     one of them, and together they poll every record exactly once (each
//     partition's records from the member assigned it); describeConsumerGroups
//     shows 2 members; each commits (commitSync) and closes, and
//     listConsumerGroupOffsets for GROUP-2 answers the end offsets.
// Both GROUP-2 members' first joins must land in one generation, which the
// broker's initial rebalance delay (group.initial.rebalance.delay.ms,
// Kafka's default 3 s) gives; with no delay the first could start alone
// and hand partitions over in a rebalance, and step 3 would report that.
// GROUP defaults to TOPIC-group.
//
// cluster (BOOTSTRAP is one broker of a cluster of three): Admin
// describeCluster names three brokers; createTopics with replication
// factor 3; describeTopics shows three distinct replicas per partition and
// the partitions led by three different brokers; then the same 1000
// records are produced and read back as in roundtrip, the client finding
// each partition's leader from the one bootstrap broker.
//
// txn: transactions (the client's transactional producer, isolation.level):
//  1. Admin createTopics TOPIC (1 partition), waiting until describeTopics
//     shows its leader;
//  2. a transactional producer (transactional.id TOPIC-tx) runs 4
//     transactions of 3 records ("t0-r0" ... "t3-r2"): 0 and 2 commit, 1
//     and 3 abort, each after flush() and every send acked (the aborted
//     records are in the log);
//  3. once Admin listOffsets answers the same end offset for read_committed
//     and read_uncommitted, 16 (each marker takes an offset), a
//     read_committed consumer (assign, seek 0, until its position is that
//     end) reads exactly t0-r0..t0-r2, t2-r0..t2-r2 at their acked offsets,
//     a read_uncommitted one all 12;
//  4. a second producer with the same transactional.id initTransactions
//     (fencing the first); the first one's beginTransaction + send +
//     commitTransaction fails with InvalidProducerEpochException when the
//     cluster's finalized transaction.version (Admin describeFeatures) is
//     2, Kafka 4.4's default (the produce is rejected), else with
//     ProducerFencedException (AddPartitionsToTxn is); the second one
//     commits a transaction ("f-r0"), and
//     read_committed then reads the 6 records and f-r0, not the fenced
//     producer's record;
//  5. read-process-write: 5 records produced to TOPIC-in (1 partition); a
//     consumer in group TOPIC-g (subscribe, read_committed, no auto-commit)
//     polls them; a transactional producer (TOPIC-rpw-tx) copies them to
//     TOPIC-out (1 partition), sendOffsetsToTransaction(TOPIC-in/0 = 5,
//     consumer.groupMetadata()) and commits; read_committed reads the 5
//     copies from TOPIC-out, and Admin listConsumerGroupOffsets TOPIC-g
//     answers offset 5 for TOPIC-in/0.
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
import java.util.HashSet;
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
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.FinalizedVersionRange;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class SluiceClientCheck {
    static final int PARTITIONS = 3;
    static final int RECORDS = 1000;
    /** Bound on every single client call that returns a future. */
    static final long CALL_TIMEOUT_S = 30;
    /** Bound on reading everything back, or on joining a group. */
    static final Duration CONSUME_DEADLINE = Duration.ofSeconds(60);
    /** How long a resumed group member must poll without a record. */
    static final Duration QUIET = Duration.ofSeconds(3);
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

        if (args.length < 2 || args.length > 4 || (args.length == 4 && !args[1].equals("group"))) {
            System.err.println("usage: SluiceClientCheck BOOTSTRAP roundtrip [TOPIC]\n"
                    + "       SluiceClientCheck BOOTSTRAP group [TOPIC [GROUP]]\n"
                    + "       SluiceClientCheck BOOTSTRAP cluster [TOPIC]\n"
                    + "       SluiceClientCheck BOOTSTRAP txn [TOPIC]");
            System.exit(2);
        }
        String bootstrap = args[0];
        String mode = args[1];
        String topic = args.length >= 3 ? args[2] : "java-check-" + ProcessHandle.current().pid();
        String group = args.length == 4 ? args[3] : topic + "-group";

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
                case "group" -> group(bootstrap, topic, group);
                case "cluster" -> cluster(bootstrap, topic);
                case "txn" -> txn(bootstrap, topic);
                default -> {
                    System.err.println("unknown mode " + mode + " (expected roundtrip, group, cluster or txn)");
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

    /** The settings every client here starts from. */
    static Properties commonConfig(String bootstrap) {
        Properties common = new Properties();
        common.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        common.put(AdminClientConfig.CLIENT_ID_CONFIG, "sluice-java-check");
        common.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, String.valueOf(CALL_TIMEOUT_S * 1000));
        return common;
    }

    static void roundtrip(String bootstrap, String topic) throws Exception {
        Properties common = commonConfig(bootstrap);
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

    static void cluster(String bootstrap, String topic) throws Exception {
        Properties common = commonConfig(bootstrap);
        Admin admin = Admin.create(common);
        try {
            Collection<org.apache.kafka.common.Node> nodes =
                    await("describeCluster", admin.describeCluster().nodes());
            check(nodes.size() == 3, "describeCluster: expected 3 brokers, got " + nodes);
            ok("describeCluster: " + nodes.size() + " brokers");
            await("createTopics", admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 3))).all());
            TopicDescription description =
                    await("describeTopics", admin.describeTopics(List.of(topic)).allTopicNames()).get(topic);
            Set<Integer> leaders = new HashSet<>();
            for (TopicPartitionInfo info : description.partitions()) {
                Set<Integer> replicas = new HashSet<>();
                info.replicas().forEach(n -> replicas.add(n.id()));
                check(replicas.size() == 3, "describeTopics: partition " + info.partition() + " replicas " + info.replicas());
                check(info.leader() != null && replicas.contains(info.leader().id()),
                        "describeTopics: partition " + info.partition() + " leader " + info.leader());
                leaders.add(info.leader().id());
            }
            check(leaders.size() == 3, "describeTopics: partitions led by " + leaders + ", expected 3 brokers");
            ok("createTopics " + topic + ": " + PARTITIONS + " partitions, 3 replicas each, led by brokers " + leaders);
            List<Sent> sent = produce(common, topic);
            consume(common, topic, sent);
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

    /**
     * Checks that `r` is the next record of its partition: `got` counts the
     * records already received per partition, `expected` holds each
     * partition's produced records in offset order. Counts `r` in `got`.
     */
    static void checkNext(ConsumerRecord<byte[], byte[]> r, Map<Integer, List<Sent>> expected,
            Map<Integer, Integer> got, String who) throws Failure {
        int p = r.partition();
        int n = got.getOrDefault(p, 0);
        List<Sent> want = expected.getOrDefault(p, List.of());
        check(n < want.size(), who + "partition " + p + ": record beyond the " + want.size()
                + " produced, at offset " + r.offset());
        Sent s = want.get(n);
        check(r.offset() == s.offset(), who + "partition " + p + ": record " + n + " at offset "
                + r.offset() + ", expected offset " + s.offset());
        check(Arrays.equals(r.key(), key(s.index())), who + "partition " + p + " offset " + r.offset()
                + ": key " + show(r.key()) + ", expected " + show(key(s.index())));
        check(Arrays.equals(r.value(), value(s.index())), who + "partition " + p + " offset " + r.offset()
                + ": value " + show(r.value()) + ", expected " + show(value(s.index())));
        check(r.headers().toArray().length == 0, who + "partition " + p + " offset " + r.offset()
                + ": unexpected headers " + r.headers());
        check(r.timestamp() > 0, who + "partition " + p + " offset " + r.offset()
                + ": timestamp " + r.timestamp());
        got.put(p, n + 1);
    }

    /** Each partition's produced records, in offset order. */
    static Map<Integer, List<Sent>> byPartition(List<Sent> sent) {
        Map<Integer, List<Sent>> expected = new TreeMap<>();
        for (Sent s : sent) {
            expected.computeIfAbsent(s.partition(), p -> new ArrayList<>()).add(s);
        }
        return expected;
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
        Map<Integer, List<Sent>> expected = byPartition(sent);
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
                    checkNext(r, expected, got, "");
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

    /** The partitions of `topic`, for messages: "0,1,2". */
    static String partitionsOf(Collection<TopicPartition> tps) {
        return tps.stream().map(TopicPartition::partition).sorted().map(String::valueOf)
                .collect(java.util.stream.Collectors.joining(","));
    }

    /** Offsets per partition, for messages: "{0=324, 1=336, 2=340}". */
    static String offsetsOf(Map<TopicPartition, ?> offsets) {
        Map<Integer, Object> sorted = new TreeMap<>();
        offsets.forEach((tp, o) -> sorted.put(tp.partition(),
                o instanceof OffsetAndMetadata m ? (Object) m.offset() : o));
        return sorted.toString();
    }

    /** Checks that committed offsets (null for none) are exactly `end`. */
    static void checkCommitted(String what, Map<TopicPartition, OffsetAndMetadata> committed,
            Map<TopicPartition, Long> end) throws Failure {
        boolean same = committed.size() == end.size();
        for (Map.Entry<TopicPartition, Long> e : end.entrySet()) {
            OffsetAndMetadata m = committed.get(e.getKey());
            same &= m != null && m.offset() == e.getValue();
        }
        check(same, what + ": " + committed + ", expected the end offsets " + offsetsOf(end));
    }

    /** Each partition a group member was given, in order (a rebalance listener). */
    static final class Assignments implements org.apache.kafka.clients.consumer.ConsumerRebalanceListener {
        final List<String> assigned = new ArrayList<>();

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {}

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
            assigned.add("[" + partitionsOf(partitions) + "]");
        }
    }

    /** A group member: its consumer, subscribed to the topic, and what it was assigned. */
    record Member(String name, KafkaConsumer<byte[], byte[]> consumer, Assignments assignments) {
        String describe() {
            return name + " (generation " + consumer.groupMetadata().generationId() + ", assigned "
                    + assignments.assigned + ")";
        }
    }

    /** A new consumer in `group` (no auto-commit, earliest), subscribed to `topic`. */
    static Member member(Properties common, String group, String name, String topic) {
        Properties props = new Properties();
        props.putAll(common);
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, "sluice-java-check-" + name.replace(' ', '-'));
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        // The protocol sluice serves (JoinGroup, SyncGroup, Heartbeat), also
        // the client's default.
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, String.valueOf(CALL_TIMEOUT_S * 1000));
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props);
        Assignments assignments = new Assignments();
        consumer.subscribe(List.of(topic), assignments);
        return new Member(name, consumer, assignments);
    }

    /**
     * Polls `members` in turn until they have received RECORDS records
     * between them, checking each as the next of its partition (checkNext),
     * and that no partition's records come from two members; then polls
     * each once more, which must bring nothing. Returns the member that read
     * each partition.
     */
    static Map<Integer, Member> pollAll(List<Member> members, Map<Integer, List<Sent>> expected, String what)
            throws Failure {
        Map<Integer, Integer> got = new HashMap<>();
        Map<Integer, Member> reader = new TreeMap<>();
        int total = 0;
        long deadline = System.nanoTime() + CONSUME_DEADLINE.toNanos();
        while (total < RECORDS) {
            if (System.nanoTime() >= deadline) {
                List<String> state = new ArrayList<>();
                members.forEach(m -> state.add(m.describe()));
                throw new Failure(what + ": polled " + total + " of " + RECORDS + " records within "
                        + CONSUME_DEADLINE + " (per partition " + new TreeMap<>(got) + "; " + state + ")");
            }
            for (Member m : members) {
                for (ConsumerRecord<byte[], byte[]> r : m.consumer().poll(Duration.ofMillis(200))) {
                    String who = what + ": " + m.name() + ": ";
                    Member previous = reader.putIfAbsent(r.partition(), m);
                    check(previous == null || previous == m, who + "partition " + r.partition() + " offset "
                            + r.offset() + ", a partition " + (previous == null ? "" : previous.name())
                            + " read before");
                    checkNext(r, expected, got, who);
                    total++;
                }
            }
        }
        for (Member m : members) {
            int extra = m.consumer().poll(Duration.ofMillis(500)).count();
            check(extra == 0, what + ": " + m.name() + " polled " + extra + " records after the " + RECORDS
                    + " produced");
        }
        return reader;
    }

    static ConsumerGroupDescription describeGroup(Admin admin, String group) throws Failure, InterruptedException {
        ConsumerGroupDescription d =
                await("describeConsumerGroups " + group, admin.describeConsumerGroups(List.of(group)).all()).get(group);
        check(d != null && d.groupId().equals(group), "describeConsumerGroups " + group + ": " + d);
        check(!d.isSimpleConsumerGroup(), "describeConsumerGroups " + group + ": a simple group: " + d);
        return d;
    }

    static void group(String bootstrap, String topic, String group) throws Exception {
        Properties common = commonConfig(bootstrap);
        Admin admin = Admin.create(common);
        List<Member> members = new ArrayList<>();
        try {
            await("createTopics", admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all());
            ok("createTopics " + topic + " with " + PARTITIONS + " partitions");
            List<Sent> sent = produce(common, topic);
            Map<Integer, List<Sent>> expected = byPartition(sent);
            Set<TopicPartition> all = new HashSet<>();
            Map<TopicPartition, Long> end = new HashMap<>();
            for (int p = 0; p < PARTITIONS; p++) {
                TopicPartition tp = new TopicPartition(topic, p);
                all.add(tp);
                end.put(tp, (long) expected.getOrDefault(p, List.of()).size());
            }

            // 1. One member reads everything, commits, leaves.
            Member first = member(common, group, "consumer 1", topic);
            members.add(first);
            pollAll(List.of(first), expected, "consumer 1 in " + group);
            check(first.consumer().assignment().equals(all) && first.assignments().assigned.size() == 1,
                    "consumer 1 in " + group + ": assignment " + first.consumer().assignment()
                            + ", expected all partitions, assigned once: " + first.describe());
            first.consumer().commitSync(Duration.ofSeconds(CALL_TIMEOUT_S));
            checkCommitted("consumer 1 in " + group + ": committed() after commitSync()",
                    first.consumer().committed(all, Duration.ofSeconds(CALL_TIMEOUT_S)), end);
            ok("consumer 1 in " + group + " (subscribe, earliest): all " + RECORDS
                    + " records exactly once, content and per-partition order exact, assigned partitions "
                    + partitionsOf(all) + "; commitSync(), committed() = end offsets " + offsetsOf(end));

            ConsumerGroupDescription d = describeGroup(admin, group);
            MemberDescription only = d.members().isEmpty() ? null : d.members().iterator().next();
            check(d.groupState() == GroupState.STABLE && d.members().size() == 1
                            && only.consumerId().equals(first.consumer().groupMetadata().memberId())
                            && only.clientId().equals("sluice-java-check-consumer-1")
                            && only.assignment().topicPartitions().equals(all),
                    "describeConsumerGroups " + group + " with consumer 1 in it: " + d);
            ok("describeConsumerGroups " + group + ": Stable, assignor " + d.partitionAssignor()
                    + ", 1 member assigned partitions " + partitionsOf(all));
            first.consumer().close();
            members.remove(first);

            d = describeGroup(admin, group);
            check(d.groupState() == GroupState.EMPTY && d.members().isEmpty(),
                    "describeConsumerGroups " + group + " after consumer 1 closed: " + d);
            ok("describeConsumerGroups " + group + " after consumer 1 closed: Empty, no members");
            Collection<GroupListing> listed = await("listGroups", admin.listGroups().all());
            check(listed.stream().anyMatch(g -> g.groupId().equals(group) && g.protocol().equals("consumer")),
                    "listGroups: expected " + group + " (protocol type consumer) in " + listed);
            ok("listGroups names " + group);
            checkCommitted("listConsumerGroupOffsets " + group,
                    await("listConsumerGroupOffsets " + group,
                            admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()), end);
            ok("listConsumerGroupOffsets " + group + ": the end offsets " + offsetsOf(end));

            // 2. A new member of the same group resumes at the commits.
            Member second = member(common, group, "consumer 2", topic);
            members.add(second);
            int polled = 0;
            long deadline = System.nanoTime() + CONSUME_DEADLINE.toNanos();
            while (!second.consumer().assignment().equals(all)) {
                check(System.nanoTime() < deadline, "consumer 2 in " + group + ": assignment "
                        + second.consumer().assignment() + " after " + CONSUME_DEADLINE + ": " + second.describe());
                polled += second.consumer().poll(Duration.ofMillis(200)).count();
            }
            long quietEnd = System.nanoTime() + QUIET.toNanos();
            while (System.nanoTime() < quietEnd) {
                polled += second.consumer().poll(Duration.ofMillis(200)).count();
            }
            Map<TopicPartition, Long> positions = new HashMap<>();
            for (TopicPartition tp : all) {
                positions.put(tp, second.consumer().position(tp, Duration.ofSeconds(CALL_TIMEOUT_S)));
            }
            check(polled == 0 && positions.equals(end), "consumer 2 in " + group + ": polled " + polled
                    + " records, positions " + offsetsOf(positions) + "; expected none, at the committed end offsets "
                    + offsetsOf(end));
            check(second.assignments().assigned.size() == 1,
                    "consumer 2 in " + group + ": assigned more than once: " + second.describe());
            second.consumer().close();
            members.remove(second);
            checkCommitted("listConsumerGroupOffsets " + group + " after consumer 2",
                    await("listConsumerGroupOffsets " + group,
                            admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()), end);
            ok("consumer 2 in " + group + " resumed at the commits: assigned partitions " + partitionsOf(all)
                    + ", positions " + offsetsOf(positions) + ", no record in " + QUIET.toMillis()
                    + " ms; commits unchanged after it closed");

            // 3. Two members of a new group share the partitions.
            String group2 = group + "-2";
            Member a = member(common, group2, "member A", topic);
            members.add(a);
            Member b = member(common, group2, "member B", topic);
            members.add(b);
            Map<Integer, Member> reader = pollAll(List.of(a, b), expected, group2);
            Set<TopicPartition> sa = a.consumer().assignment();
            Set<TopicPartition> sb = b.consumer().assignment();
            Set<TopicPartition> union = new HashSet<>(sa);
            union.addAll(sb);
            String state = a.describe() + ", " + b.describe();
            check(a.assignments().assigned.size() == 1 && b.assignments().assigned.size() == 1
                            && a.consumer().groupMetadata().generationId() == b.consumer().groupMetadata().generationId(),
                    group2 + ": expected each member assigned once, in one generation: " + state);
            check(!sa.isEmpty() && !sb.isEmpty() && sa.size() + sb.size() == PARTITIONS && union.equals(all),
                    group2 + ": assignments do not split the partitions between the 2 members: " + state);
            for (Map.Entry<Integer, Member> e : reader.entrySet()) {
                check(e.getValue().consumer().assignment().contains(new TopicPartition(topic, e.getKey())),
                        group2 + ": partition " + e.getKey() + " read by " + e.getValue().name() + ": " + state);
            }
            d = describeGroup(admin, group2);
            Set<String> ids = new HashSet<>();
            d.members().forEach(m -> ids.add(m.consumerId()));
            check(d.groupState() == GroupState.STABLE && d.members().size() == 2
                            && ids.equals(Set.of(a.consumer().groupMetadata().memberId(),
                                    b.consumer().groupMetadata().memberId())),
                    "describeConsumerGroups " + group2 + " with both members in it: " + d);
            ok("describeConsumerGroups " + group2 + ": Stable, 2 members");
            a.consumer().commitSync(Duration.ofSeconds(CALL_TIMEOUT_S));
            b.consumer().commitSync(Duration.ofSeconds(CALL_TIMEOUT_S));
            a.consumer().close();
            members.remove(a);
            b.consumer().close();
            members.remove(b);
            checkCommitted("listConsumerGroupOffsets " + group2,
                    await("listConsumerGroupOffsets " + group2,
                            admin.listConsumerGroupOffsets(group2).partitionsToOffsetAndMetadata()), end);
            ok(group2 + ": member A assigned " + partitionsOf(sa) + ", member B assigned " + partitionsOf(sb)
                    + ", all " + RECORDS + " records exactly once between them, content and per-partition order"
                    + " exact; both commitSync() and close(); listConsumerGroupOffsets = end offsets");
        } finally {
            for (Member m : members) {
                m.consumer().close();
            }
            admin.close(Duration.ofSeconds(5));
        }
    }

    /** Bound on each wait of the txn mode (a topic usable, a read to the end). */
    static final Duration TXN_WAIT = Duration.ofSeconds(30);

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** Creates `topic` with 1 partition and waits until describeTopics shows its leader. */
    static void createSinglePartition(Admin admin, String topic) throws Exception {
        await("createTopics " + topic, admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all());
        long deadline = System.nanoTime() + TXN_WAIT.toNanos();
        String last = "no answer";
        while (true) {
            try {
                TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames()
                        .get(CALL_TIMEOUT_S, TimeUnit.SECONDS).get(topic);
                if (d != null && d.partitions().size() == 1 && d.partitions().get(0).leader() != null
                        && !d.partitions().get(0).leader().isEmpty()) {
                    break;
                }
                last = String.valueOf(d);
            } catch (ExecutionException e) {
                last = String.valueOf(e.getCause());
            }
            check(System.nanoTime() < deadline, "describeTopics " + topic + ": no leader within " + TXN_WAIT
                    + " of createTopics (last answer: " + last + ")");
            Thread.sleep(100);
        }
        ok("createTopics " + topic + " with 1 partition, led by a broker");
    }

    /** A transactional producer with `transactionalId`, its transactions initialised. */
    static KafkaProducer<byte[], byte[]> transactionalProducer(Properties common, String transactionalId,
            String name) {
        Properties props = new Properties();
        props.putAll(common);
        props.put(ProducerConfig.CLIENT_ID_CONFIG, "sluice-java-check-" + name);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        // Bounds initTransactions, commitTransaction, ..., and a send's wait
        // for metadata or an ack.
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props);
        producer.initTransactions();
        return producer;
    }

    /** A record read back: its offset and value. */
    record Read(long offset, String value) {
        @Override
        public String toString() {
            return offset + ":" + value;
        }
    }

    /**
     * Waits (up to TXN_WAIT) until partition 0 of `topic` has no open
     * transaction: Admin listOffsets latest answers the same offset for
     * read_committed (the last stable offset) and read_uncommitted (the high
     * watermark). A transaction's markers are written after EndTxn is
     * answered, so right after a commit or abort the last stable offset may
     * still be at the transaction's first record. Returns that end offset.
     */
    static long stableEnd(Admin admin, String topic) throws Exception {
        TopicPartition tp = new TopicPartition(topic, 0);
        long deadline = System.nanoTime() + TXN_WAIT.toNanos();
        while (true) {
            long committed = await("listOffsets (read_committed) " + tp, admin.listOffsets(
                    Map.of(tp, OffsetSpec.latest()), new ListOffsetsOptions(IsolationLevel.READ_COMMITTED))
                    .partitionResult(tp)).offset();
            long uncommitted = await("listOffsets (read_uncommitted) " + tp, admin.listOffsets(
                    Map.of(tp, OffsetSpec.latest()), new ListOffsetsOptions(IsolationLevel.READ_UNCOMMITTED))
                    .partitionResult(tp)).offset();
            if (committed == uncommitted) {
                return committed;
            }
            check(System.nanoTime() < deadline, "listOffsets " + tp + ": read_committed end " + committed
                    + ", read_uncommitted end " + uncommitted + ", still different " + TXN_WAIT
                    + " after the transactions ended");
            Thread.sleep(100);
        }
    }

    /**
     * Every record of partition 0 of `topic` a consumer with `isolation`
     * reads from offset 0 until its position reaches `end`.
     */
    static List<Read> readPartition(Properties common, String topic, String isolation, long end) throws Exception {
        Properties props = new Properties();
        props.putAll(common);
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, "sluice-java-check-" + isolation.replace('_', '-'));
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        props.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, String.valueOf(CALL_TIMEOUT_S * 1000));
        TopicPartition tp = new TopicPartition(topic, 0);
        List<Read> got = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            consumer.assign(List.of(tp));
            consumer.seek(tp, 0);
            long deadline = System.nanoTime() + TXN_WAIT.toNanos();
            while (consumer.position(tp) < end) {
                check(System.nanoTime() < deadline, isolation + " read of " + tp + ": at position "
                        + consumer.position(tp) + " of end offset " + end + " after " + TXN_WAIT + ", read " + got);
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    got.add(new Read(r.offset(), new String(r.value(), StandardCharsets.UTF_8)));
                }
            }
            return got;
        }
    }

    /** `e` and its causes, for messages: "A: msg <- B: msg". */
    static String chain(Throwable e) {
        List<String> parts = new ArrayList<>();
        for (Throwable t = e; t != null && parts.size() < 5; t = t.getCause()) {
            parts.add(t.getClass().getName() + ": " + t.getMessage());
        }
        return String.join(" <- ", parts);
    }

    static boolean causedBy(Throwable e, Class<? extends Throwable> kind) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (kind.isInstance(t)) {
                return true;
            }
        }
        return false;
    }

    static void txn(String bootstrap, String topic) throws Exception {
        Properties common = commonConfig(bootstrap);
        Admin admin = Admin.create(common);
        List<AutoCloseable> open = new ArrayList<>();
        try {
            // 1. The topic.
            createSinglePartition(admin, topic);

            // 2. Four transactions: 0 and 2 commit, 1 and 3 abort.
            String txId = topic + "-tx";
            KafkaProducer<byte[], byte[]> first = transactionalProducer(common, txId, "txn-1");
            open.add(first);
            ok("initTransactions (transactional.id " + txId + ")");
            List<Read> all = new ArrayList<>();
            List<Read> committed = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                first.beginTransaction();
                List<Future<RecordMetadata>> acks = new ArrayList<>();
                List<String> values = new ArrayList<>();
                for (int r = 0; r < 3; r++) {
                    String v = "t" + t + "-r" + r;
                    values.add(v);
                    acks.add(first.send(new ProducerRecord<>(topic, 0, null, utf8(v))));
                }
                first.flush();
                List<Read> acked = new ArrayList<>();
                for (int r = 0; r < 3; r++) {
                    RecordMetadata m = await("send of " + values.get(r), acks.get(r));
                    check(m.partition() == 0 && m.hasOffset(), values.get(r) + " acked as " + m);
                    acked.add(new Read(m.offset(), values.get(r)));
                }
                all.addAll(acked);
                boolean commit = t % 2 == 0;
                if (commit) {
                    first.commitTransaction();
                    committed.addAll(acked);
                } else {
                    first.abortTransaction();
                }
                ok("transaction " + t + ": 3 records acked at " + acked + ", " + (commit ? "committed" : "aborted"));
            }
            for (int i = 1; i < all.size(); i++) {
                check(all.get(i).offset() > all.get(i - 1).offset(), "acked offsets not increasing: " + all);
            }

            // 3. What each isolation level reads, once the last abort's
            // marker is written.
            long end = stableEnd(admin, topic);
            check(end == 16, topic + "-0: end offset " + end + " after the 4 transactions, expected 16"
                    + " (12 records, 4 markers)");
            List<Read> rc = readPartition(common, topic, "read_committed", end);
            check(rc.equals(committed), "read_committed read " + rc + ", expected " + committed);
            ok("read_committed from offset 0 to the end offset " + end + ": exactly the committed records " + rc);
            List<Read> ru = readPartition(common, topic, "read_uncommitted", end);
            check(ru.equals(all), "read_uncommitted read " + ru + ", expected " + all);
            ok("read_uncommitted from offset 0 to the end offset " + end + ": all 12 records");

            // 4. A second producer with the same transactional.id fences the first.
            KafkaProducer<byte[], byte[]> second = transactionalProducer(common, txId, "txn-2");
            open.add(second);
            ok("a second producer with transactional.id " + txId + ": initTransactions");
            FinalizedVersionRange tvRange = await("describeFeatures", admin.describeFeatures().featureMetadata())
                    .finalizedFeatures().get("transaction.version");
            short tv = tvRange == null ? 0 : tvRange.maxVersionLevel();
            Throwable fenced = null;
            String failedAt = "beginTransaction";
            try {
                first.beginTransaction();
                failedAt = "send";
                Future<RecordMetadata> ack = first.send(new ProducerRecord<>(topic, 0, null, utf8("z-r0")));
                first.flush();
                failedAt = "commitTransaction";
                first.commitTransaction();
                failedAt = "the send's ack";
                ack.get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
            } catch (Exception e) {
                fenced = e;
            }
            check(fenced != null, "the fenced producer's beginTransaction + send + commitTransaction succeeded");
            // Transaction version 2 (Kafka 4.4's default: Produce adds the
            // partition, no AddPartitionsToTxn) rejects the zombie's produce
            // as INVALID_PRODUCER_EPOCH, and commitTransaction throws
            // InvalidProducerEpochException; before it, AddPartitionsToTxn is
            // answered PRODUCER_FENCED, thrown as ProducerFencedException
            // (Kafka 4.4 downgraded to transaction.version 1 does that).
            Class<? extends Exception> want =
                    tv >= 2 ? InvalidProducerEpochException.class : ProducerFencedException.class;
            check(causedBy(fenced, want), "the fenced producer's " + failedAt + " failed with " + chain(fenced)
                    + ", expected " + want.getName() + " (transaction.version " + tv + ")");
            ok("the first producer is fenced: its " + failedAt + " threw " + chain(fenced) + " (transaction.version "
                    + tv + ")");
            second.beginTransaction();
            RecordMetadata f = await("send of f-r0",
                    second.send(new ProducerRecord<>(topic, 0, null, utf8("f-r0"))));
            second.commitTransaction();
            List<Read> afterFence = new ArrayList<>(committed);
            afterFence.add(new Read(f.offset(), "f-r0"));
            end = stableEnd(admin, topic);
            rc = readPartition(common, topic, "read_committed", end);
            check(rc.equals(afterFence), "read_committed after the fencing producer's commit read " + rc
                    + ", expected " + afterFence);
            ok("the fencing producer committed f-r0; read_committed to the end offset " + end + " reads " + rc);

            // 5. Read-process-write.
            String in = topic + "-in";
            String out = topic + "-out";
            String groupId = topic + "-g";
            createSinglePartition(admin, in);
            createSinglePartition(admin, out);
            Properties plain = new Properties();
            plain.putAll(common);
            plain.put(ProducerConfig.CLIENT_ID_CONFIG, "sluice-java-check-producer");
            plain.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
            plain.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
            plain.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
            plain.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
            try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(plain)) {
                List<Future<RecordMetadata>> acks = new ArrayList<>();
                for (int i = 0; i < 5; i++) {
                    acks.add(p.send(new ProducerRecord<>(in, 0, null, utf8("in-" + i))));
                }
                p.flush();
                for (int i = 0; i < 5; i++) {
                    await("send of in-" + i, acks.get(i));
                }
            }
            ok("produced in-0..in-4 to " + in);

            Properties cprops = new Properties();
            cprops.putAll(common);
            cprops.put(ConsumerConfig.CLIENT_ID_CONFIG, "sluice-java-check-rpw");
            cprops.put(ConsumerConfig.GROUP_ID_CONFIG, groupId);
            cprops.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
            cprops.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
            cprops.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            cprops.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            cprops.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
            cprops.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
            cprops.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, String.valueOf(CALL_TIMEOUT_S * 1000));
            KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cprops);
            open.add(consumer);
            consumer.subscribe(List.of(in));
            List<ConsumerRecord<byte[], byte[]>> input = new ArrayList<>();
            long deadline = System.nanoTime() + CONSUME_DEADLINE.toNanos();
            while (input.size() < 5) {
                check(System.nanoTime() < deadline, "consumer in " + groupId + ": polled " + input.size()
                        + " of 5 records of " + in + " within " + CONSUME_DEADLINE);
                consumer.poll(Duration.ofMillis(200)).forEach(input::add);
            }
            List<String> inValues = new ArrayList<>();
            input.forEach(r -> inValues.add(new String(r.value(), StandardCharsets.UTF_8)));
            check(inValues.equals(List.of("in-0", "in-1", "in-2", "in-3", "in-4")),
                    "consumer in " + groupId + " polled " + inValues);
            ConsumerGroupMetadata groupMetadata = consumer.groupMetadata();
            ok("consumer in " + groupId + " (read_committed, no auto-commit) polled " + inValues + " (generation "
                    + groupMetadata.generationId() + ")");

            KafkaProducer<byte[], byte[]> copier = transactionalProducer(common, topic + "-rpw-tx", "rpw");
            open.add(copier);
            copier.beginTransaction();
            List<Future<RecordMetadata>> copies = new ArrayList<>();
            for (ConsumerRecord<byte[], byte[]> r : input) {
                copies.add(copier.send(new ProducerRecord<>(out, 0, null, r.value())));
            }
            TopicPartition inTp = new TopicPartition(in, 0);
            long next = input.get(input.size() - 1).offset() + 1;
            copier.sendOffsetsToTransaction(Map.of(inTp, new OffsetAndMetadata(next)), groupMetadata);
            copier.commitTransaction();
            List<Read> copied = new ArrayList<>();
            for (int i = 0; i < 5; i++) {
                RecordMetadata m = await("send of the copy of " + inValues.get(i), copies.get(i));
                copied.add(new Read(m.offset(), inValues.get(i)));
            }
            ok("copied them to " + out + " at " + copied + " with sendOffsetsToTransaction(" + in + "/0 = " + next
                    + ", groupMetadata()), committed");

            List<Read> outRead = readPartition(common, out, "read_committed", stableEnd(admin, out));
            check(outRead.equals(copied), "read_committed read of " + out + ": " + outRead + ", expected " + copied);
            ok("read_committed reads the 5 copies from " + out + ": " + outRead);

            // The offset commit takes effect when the commit marker reaches
            // the group's partition, just after commitTransaction returns.
            long offsetsDeadline = System.nanoTime() + TXN_WAIT.toNanos();
            Map<TopicPartition, OffsetAndMetadata> groupOffsets;
            while (true) {
                groupOffsets = await("listConsumerGroupOffsets " + groupId,
                        admin.listConsumerGroupOffsets(groupId).partitionsToOffsetAndMetadata());
                OffsetAndMetadata o = groupOffsets.get(inTp);
                if (o != null && o.offset() == 5 && groupOffsets.size() == 1) {
                    break;
                }
                check(System.nanoTime() < offsetsDeadline, "listConsumerGroupOffsets " + groupId + ": "
                        + groupOffsets + " " + TXN_WAIT + " after the commit, expected " + in + "-0 at offset 5");
                Thread.sleep(100);
            }
            ok("listConsumerGroupOffsets " + groupId + ": " + in + "/0 at offset 5");
        } finally {
            for (int i = open.size() - 1; i >= 0; i--) {
                AutoCloseable c = open.get(i);
                try {
                    if (c instanceof KafkaProducer<?, ?> p) {
                        p.close(Duration.ofSeconds(5));
                    } else if (c instanceof KafkaConsumer<?, ?> k) {
                        k.close();
                    }
                } catch (Exception e) {
                    // A fenced producer may complain on close; the checks are done.
                }
            }
            admin.close(Duration.ofSeconds(5));
        }
    }
}
