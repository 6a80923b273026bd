// A Kafka Streams word count with exactly-once processing (exactly_once_v2),
// and the tools to drive and check it, for run.sh: Kafka Streams against a
// broker that is killed mid-stream and restarted must still leave every
// count in its output exactly once.
//
// Run as a single-file source program, after
// `mvn -q -B -ntp dependency:copy-dependencies` in this directory:
//
//   java -cp 'target/dependency/*' WordCount.java create BOOTSTRAP TOPIC PARTITIONS
//   java -cp 'target/dependency/*' WordCount.java produce BOOTSTRAP INPUT N [START]
//   java -cp 'target/dependency/*' WordCount.java app BOOTSTRAP APP_ID INPUT OUTPUT STATE_DIR [DELAY_MS]
//   java -cp 'target/dependency/*' WordCount.java settle BOOTSTRAP OUTPUT EXPECTED_N TIMEOUT_S
//   java -cp 'target/dependency/*' WordCount.java check BOOTSTRAP OUTPUT EXPECTED_N
//
// create: Admin createTopics (replication factor 1); an existing topic is
// not an error. Prints nothing.
//
// produce: creates INPUT (2 partitions) if missing, then sends N lines with
// an idempotent producer (acks=all) and flushes. Line i is the words
// "w{i%7} w{i%3} w{i%5}", keyed by i. START (the first i) defaults to the
// number of records already in INPUT (the sum of its end offsets), so two
// runs of 300 write lines 0..599. Prints "produced N lines".
//
// app: the word count. Lines from INPUT are split into words, rekeyed by
// word through a repartition topic (APP_ID-words-repartition) and counted
// in a KTable (state store "counts", changelog APP_ID-counts-changelog);
// every new count goes to OUTPUT as (word, count as a decimal string).
// processing.guarantee=exactly_once_v2, commit.interval.ms=100,
// statestore.cache.max.bytes=0 (every update is sent), one stream thread,
// replication factor 1, state.dir=STATE_DIR, and the producer's
// linger.ms=0 (see app()). Prints "running" once, when the client first
// reaches RUNNING, and runs until it is killed. DELAY_MS (0 by default)
// paces it, so that a kill lands mid-stream with a transaction open: the
// stream thread sleeps that long before each input line and again before
// counting each word. stderr gets "WordCount: line K" for the first input
// line it takes and every 50th (K the line's key), and "WordCount:
// counting word N" for the first word it counts and every 100th. A stream
// thread's uncaught exception is printed with its stack to stderr and
// stops the client; the program then exits 1.
//
// settle: reads OUTPUT (read_committed, from the beginning, no group)
// until it holds at least 3 * EXPECTED_N records and none has come for
// 5 s, or TIMEOUT_S pass. Prints "settled: true/false".
//
// check: reads OUTPUT (read_committed, from the beginning, no group) until
// no record has come for 5 s (at most 120 s), and prints the last count of
// each word ("word count", sorted by word), "output records: X",
// "duplicates-free: true/false" (each word's counts, in offset order, are
// exactly 1, 2, 3, ...: no count repeated, none skipped, none going back;
// all of a word's records are in one partition) and "final counts correct:
// true/false" (the last counts equal the counts of lines 0..EXPECTED_N-1).
// What is wrong is described on stderr. Exits 0 when both hold, else 1.
//
// stdout carries only those deterministic lines; the clients' log goes to
// stderr at WARN (SLUICE_CLIENT_LOG=info, debug or trace for more).
// Exit status 2 on bad arguments, 3 when the watchdog fires (every mode
// but app).

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;

public class WordCount {
    static final long WATCHDOG_S = 300;
    static final long QUIET_MS = 5_000;
    static final long CHECK_MAX_MS = 120_000;

    public static void main(String[] args) throws Exception {
        // Before the first logger exists: slf4j-simple reads these once.
        String level = System.getenv().getOrDefault("SLUICE_CLIENT_LOG", "warn");
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", level);
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        System.setProperty("org.slf4j.simpleLogger.showDateTime", "true");
        System.setProperty("org.slf4j.simpleLogger.dateTimeFormat", "HH:mm:ss.SSS");

        String mode = args.length > 0 ? args[0] : "";
        int status;
        switch (mode) {
            case "create" -> {
                need(args, 4, 4);
                watchdog();
                create(args[1], args[2], Integer.parseInt(args[3]));
                status = 0;
            }
            case "produce" -> {
                need(args, 4, 5);
                watchdog();
                produce(args[1], args[2], Integer.parseInt(args[3]),
                        args.length == 5 ? Long.parseLong(args[4]) : -1);
                status = 0;
            }
            case "app" -> {
                need(args, 6, 7);
                status = app(args[1], args[2], args[3], args[4], args[5],
                        args.length == 7 ? Long.parseLong(args[6]) : 0);
            }
            case "settle" -> {
                need(args, 5, 5);
                watchdog();
                long n = Long.parseLong(args[3]);
                Map<String, List<Long>> seen = new TreeMap<>();
                long[] total = {0};
                boolean settled = read(args[1], args[2], 3 * n, Long.parseLong(args[4]) * 1000, seen, total);
                System.out.println("settled: " + settled);
                status = settled ? 0 : 1;
            }
            case "check" -> {
                need(args, 4, 4);
                watchdog();
                status = check(args[1], args[2], Integer.parseInt(args[3]));
            }
            default -> {
                usage();
                status = 2;
            }
        }
        System.out.flush();
        System.err.flush();
        // halt, not exit: a client thread stuck in a shutdown hook must not
        // keep the process alive.
        Runtime.getRuntime().halt(status);
    }

    static void usage() {
        System.err.println("usage: WordCount create BOOTSTRAP TOPIC PARTITIONS\n"
                + "       WordCount produce BOOTSTRAP INPUT N [START]\n"
                + "       WordCount app BOOTSTRAP APP_ID INPUT OUTPUT STATE_DIR [DELAY_MS]\n"
                + "       WordCount settle BOOTSTRAP OUTPUT EXPECTED_N TIMEOUT_S\n"
                + "       WordCount check BOOTSTRAP OUTPUT EXPECTED_N");
    }

    static void need(String[] args, int min, int max) {
        if (args.length < min || args.length > max) {
            usage();
            Runtime.getRuntime().halt(2);
        }
    }

    static void watchdog() {
        Thread t = new Thread(() -> {
            try {
                Thread.sleep(TimeUnit.SECONDS.toMillis(WATCHDOG_S));
            } catch (InterruptedException e) {
                return;
            }
            System.out.println("watchdog: still running after " + WATCHDOG_S + " s");
            System.out.flush();
            Runtime.getRuntime().halt(3);
        }, "watchdog");
        t.setDaemon(true);
        t.start();
    }

    /** The words of input line i. */
    static String line(long i) {
        return "w" + (i % 7) + " w" + (i % 3) + " w" + (i % 5);
    }

    static void create(String bootstrap, String topic, int partitions) throws Exception {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(p)) {
            try {
                admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get(60, TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) {
                    throw e;
                }
            }
        }
    }

    static void produce(String bootstrap, String topic, int n, long start) throws Exception {
        create(bootstrap, topic, 2);
        if (start < 0) {
            start = records(bootstrap, topic);
        }
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        AtomicReference<Exception> failed = new AtomicReference<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            for (long i = start; i < start + n; i++) {
                producer.send(new ProducerRecord<>(topic, Long.toString(i), line(i)), (md, e) -> {
                    if (e != null) {
                        failed.compareAndSet(null, e);
                    }
                });
            }
            producer.flush();
        }
        if (failed.get() != null) {
            throw failed.get();
        }
        System.out.println("produced " + n + " lines");
    }

    /** The records in a topic (no transactions): the sum of its end offsets. */
    static long records(String bootstrap, String topic) {
        try (KafkaConsumer<String, String> c = consumer(bootstrap)) {
            List<TopicPartition> tps = partitions(c, topic);
            return c.endOffsets(tps, Duration.ofSeconds(60)).values().stream().mapToLong(Long::longValue).sum();
        }
    }

    static KafkaConsumer<String, String> consumer(String bootstrap) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
        return new KafkaConsumer<>(p);
    }

    static List<TopicPartition> partitions(KafkaConsumer<String, String> c, String topic) {
        long deadline = System.currentTimeMillis() + 60_000;
        while (true) {
            List<PartitionInfo> infos = c.partitionsFor(topic, Duration.ofSeconds(10));
            if (infos != null && !infos.isEmpty()) {
                return infos.stream().map(i -> new TopicPartition(i.topic(), i.partition()))
                        .sorted((a, b) -> Integer.compare(a.partition(), b.partition()))
                        .collect(Collectors.toList());
            }
            if (System.currentTimeMillis() > deadline) {
                throw new IllegalStateException("no partitions for " + topic);
            }
        }
    }

    static int app(String bootstrap, String appId, String input, String output, String stateDir,
            long delayMs) throws InterruptedException {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        // A killed member leaves the group after this, not Kafka's 45 s.
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1500);
        // Records go to the broker as they come (Streams' default lingers
        // 100 ms, about a commit interval), so a kill leaves records of an
        // open transaction in the output, repartition and changelog topics,
        // to be aborted and skipped by read_committed readers and restores.
        p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 0);

        StreamsBuilder builder = new StreamsBuilder();
        long[] lines = {0};
        long[] words = {0};
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
                .peek((k, v) -> pace(delayMs, lines[0]++ % 50 == 0 ? "WordCount: line " + k : null))
                .flatMapValues(v -> Arrays.stream(v.toLowerCase().split("\\W+")).filter(w -> !w.isEmpty()).toList())
                .selectKey((k, w) -> w)
                // The repartition topic APP_ID-words-repartition (what
                // groupBy would make), read back by a second sub-topology.
                .repartition(Repartitioned.<String, String>as("words")
                        .withKeySerde(Serdes.String()).withValueSerde(Serdes.String()))
                .peek((k, v) -> pace(delayMs, words[0]++ % 100 == 0 ? "WordCount: counting word " + words[0] : null))
                .groupByKey(Grouped.with(Serdes.String(), Serdes.String()))
                .count(Materialized.as("counts"))
                .toStream()
                .mapValues(c -> Long.toString(c))
                .to(output, Produced.with(Serdes.String(), Serdes.String()));

        KafkaStreams streams = new KafkaStreams(builder.build(), p);
        CountDownLatch stopped = new CountDownLatch(1);
        AtomicBoolean running = new AtomicBoolean();
        streams.setStateListener((now, before) -> {
            System.err.println("WordCount: state " + before + " -> " + now);
            if (now == KafkaStreams.State.RUNNING && running.compareAndSet(false, true)) {
                System.out.println("running");
                System.out.flush();
            }
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING
                    || now == KafkaStreams.State.PENDING_ERROR) {
                stopped.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("WordCount: uncaught exception in a stream thread:");
            e.printStackTrace(System.err);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.start();
        stopped.await();
        System.err.println("WordCount: the client stopped (" + streams.state() + ")");
        streams.close(Duration.ofSeconds(10));
        System.out.println("stopped");
        return 1;
    }

    /** Sleeps delayMs (when positive), after printing note (when not null) to stderr. */
    static void pace(long delayMs, String note) {
        if (note != null) {
            System.err.println(note);
        }
        if (delayMs > 0) {
            try {
                Thread.sleep(delayMs);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * Reads every partition of topic from the beginning (read_committed),
     * adding each record's value to seen[key] (in offset order per
     * partition) and counting all in total[0], until at least min records
     * are in and none has come for QUIET_MS; true if so within maxMs.
     */
    static boolean read(String bootstrap, String topic, long min, long maxMs,
            Map<String, List<Long>> seen, long[] total) {
        Map<String, Integer> partitionOf = new HashMap<>();
        try (KafkaConsumer<String, String> c = consumer(bootstrap)) {
            List<TopicPartition> tps = partitions(c, topic);
            c.assign(tps);
            c.seekToBeginning(tps);
            long start = System.currentTimeMillis();
            long last = start;
            while (true) {
                long now = System.currentTimeMillis();
                if (total[0] >= min && now - last >= QUIET_MS) {
                    return true;
                }
                if (now - start >= maxMs) {
                    return false;
                }
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    total[0]++;
                    last = System.currentTimeMillis();
                    Integer was = partitionOf.putIfAbsent(r.key(), r.partition());
                    if (was != null && was != r.partition()) {
                        System.err.printf("check: word %s in partitions %d and %d%n", r.key(), was, r.partition());
                        seen.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(-1L);
                    }
                    long v;
                    try {
                        v = Long.parseLong(r.value());
                    } catch (NumberFormatException e) {
                        System.err.printf("check: %s-%d@%d: value %s is no count%n", r.topic(), r.partition(),
                                r.offset(), r.value());
                        v = -1;
                    }
                    seen.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(v);
                }
            }
        }
    }

    static int check(String bootstrap, String output, int n) {
        Map<String, List<Long>> seen = new TreeMap<>();
        long[] total = {0};
        if (!read(bootstrap, output, 0, CHECK_MAX_MS, seen, total)) {
            System.err.println("check: records still coming after " + CHECK_MAX_MS + " ms");
        }
        Map<String, Long> expected = new TreeMap<>();
        for (long i = 0; i < n; i++) {
            for (String w : line(i).split(" ")) {
                expected.merge(w, 1L, Long::sum);
            }
        }
        Map<String, Long> last = new TreeMap<>();
        boolean exact = true;
        for (Map.Entry<String, List<Long>> e : seen.entrySet()) {
            List<Long> counts = e.getValue();
            last.put(e.getKey(), counts.get(counts.size() - 1));
            for (int j = 0; j < counts.size(); j++) {
                if (counts.get(j) != j + 1) {
                    exact = false;
                    int from = Math.max(0, j - 3);
                    System.err.printf("check: word %s: count #%d is %d, not %d (counts %d..%d: %s)%n",
                            e.getKey(), j + 1, counts.get(j), j + 1, from + 1,
                            Math.min(counts.size(), j + 4), counts.subList(from, Math.min(counts.size(), j + 4)));
                    break;
                }
            }
        }
        for (Map.Entry<String, Long> e : last.entrySet()) {
            System.out.println(e.getKey() + " " + e.getValue());
        }
        boolean correct = last.equals(expected);
        if (!correct) {
            System.err.println("check: expected final counts " + expected + ", got " + last);
        }
        System.out.println("output records: " + total[0]);
        System.out.println("duplicates-free: " + exact);
        System.out.println("final counts correct: " + correct);
        return exact && correct ? 0 : 1;
    }
}
