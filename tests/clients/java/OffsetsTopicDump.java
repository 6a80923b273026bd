// Reads every record of __consumer_offsets and decodes it with Kafka's own
// group coordinator serde (GroupCoordinatorRecordSerde, as Kafka's broker
// replays the topic), printing one line per record:
//
//   record TYPE KEY-JSON VALUE-JSON      (VALUE-JSON "null" for a tombstone)
//   undecodable ERROR                    (a record Kafka could not read)
//
// and last "undecodable records: N". Kafka's jars are the oracle's, so it
// runs as a single-file source program through scripts/kafka-oracle:
//
//   scripts/kafka-oracle tool tests/clients/java/OffsetsTopicDump.java --bootstrap-server H:P
//
// It reads each partition up to the end offset it had when the program
// started, then exits.

import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.coordinator.common.runtime.CoordinatorRecord;
import org.apache.kafka.coordinator.group.GroupCoordinatorRecordSerde;
import org.apache.kafka.coordinator.group.generated.CoordinatorRecordJsonConverters;

public class OffsetsTopicDump {
    public static void main(String[] args) {
        if (args.length != 2 || !args[0].equals("--bootstrap-server")) {
            System.err.println("usage: OffsetsTopicDump --bootstrap-server HOST:PORT");
            System.exit(2);
        }
        Properties props = new Properties();
        props.put("bootstrap.servers", args[1]);
        GroupCoordinatorRecordSerde serde = new GroupCoordinatorRecordSerde();
        int undecodable = 0;
        try (KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> partitions = new ArrayList<>();
            consumer.partitionsFor("__consumer_offsets")
                .forEach(p -> partitions.add(new TopicPartition(p.topic(), p.partition())));
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> end = consumer.endOffsets(partitions);
            long deadline = System.currentTimeMillis() + 60_000;
            while (partitions.stream().anyMatch(tp -> consumer.position(tp) < end.get(tp))) {
                if (System.currentTimeMillis() > deadline) {
                    System.out.println("timed out");
                    System.exit(1);
                }
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    try {
                        CoordinatorRecord record = serde.deserialize(
                            ByteBuffer.wrap(r.key()),
                            r.value() == null ? null : ByteBuffer.wrap(r.value()));
                        String key = CoordinatorRecordJsonConverters
                            .writeRecordKeyAsJson(record.key()).toString();
                        String value = record.value() == null
                            ? "null"
                            : CoordinatorRecordJsonConverters.writeRecordValueAsJson(
                                record.value().message(), record.value().version()).toString();
                        System.out.println("record " + record.key().apiKey() + " " + key + " " + value);
                    } catch (RuntimeException e) {
                        undecodable++;
                        System.out.println("undecodable " + e);
                    }
                }
            }
        }
        System.out.println("undecodable records: " + undecodable);
    }
}
