// A KafkaConsumer of the new group protocol (group.protocol=consumer)
// subscribed with a server-side pattern (KafkaConsumer.subscribe of a
// SubscriptionPattern: the broker matches it, KIP-848), run against Kafka
// and against sluice by tests/group_topics.rs, which expects the same
// lines from both.
//
// Run as a single-file source program, after `mvn dependency:copy-dependencies`
// in this directory:
//
//   java -cp 'target/dependency/*' PatternCheck.java BOOTSTRAP PREFIX
//
//  1. Admin creates PREFIX-a (1 partition) and PREFIX-other (1 partition);
//  2. a consumer in group PREFIX-g subscribes to the pattern "PREFIX-[ab]"
//     and polls until its assignment is PREFIX-a's partition; prints it;
//  3. Admin creates PREFIX-b (2 partitions); the consumer polls until it
//     also has PREFIX-b's; prints its assignment;
//  4. the consumer subscribes to the pattern "PREFIX-other" instead and
//     polls until it has that topic alone; prints it; closes.
//
// Every wait is bounded (60 s: Kafka matches a pattern again at most every
// 10 s); one that runs out prints what the assignment was.

import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.TreeSet;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.SubscriptionPattern;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class PatternCheck {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String prefix = args[1];
        Properties common = new Properties();
        common.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(common)) {
            admin.createTopics(List.of(new NewTopic(prefix + "-a", 1, (short) 1),
                    new NewTopic(prefix + "-other", 1, (short) 1))).all().get();
            Properties props = new Properties();
            props.putAll(common);
            props.put(ConsumerConfig.GROUP_ID_CONFIG, prefix + "-g");
            props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
            props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
            props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
            try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
                consumer.subscribe(new SubscriptionPattern(prefix + "-[ab]"));
                until("pattern, at first", consumer, prefix, "[-a:0]");
                admin.createTopics(List.of(new NewTopic(prefix + "-b", 2, (short) 1))).all().get();
                until("pattern, a matching topic made", consumer, prefix, "[-a:0, -b:0, -b:1]");
                consumer.subscribe(new SubscriptionPattern(prefix + "-other"));
                until("another pattern", consumer, prefix, "[-other:0]");
            }
        }
    }

    /// Polls until the assignment, printed without the prefix, is `want`
    /// (at most 60 s), then prints it.
    static void until(String label, KafkaConsumer<byte[], byte[]> consumer, String prefix,
            String want) {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        String owned = owned(consumer, prefix);
        while (!owned.equals(want) && System.nanoTime() < deadline) {
            consumer.poll(Duration.ofMillis(100));
            owned = owned(consumer, prefix);
        }
        System.out.println(label + ": " + owned);
    }

    static String owned(KafkaConsumer<byte[], byte[]> consumer, String prefix) {
        TreeSet<String> names = new TreeSet<>();
        for (TopicPartition tp : consumer.assignment()) {
            names.add(tp.topic().substring(prefix.length()) + ":" + tp.partition());
        }
        return names.toString();
    }
}
