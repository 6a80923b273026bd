// Exactly-once read-process-write with a consumer of the new group protocol
// (group.protocol=consumer, KIP-848): the producer commits the consumer's
// offsets in its transaction (sendOffsetsToTransaction, TxnOffsetCommit)
// under the member's metadata, and the coordinator checks that metadata.
// Run against Kafka and against sluice by tests/group_transactions.rs,
// which expects the same lines from both.
//
// Run as a single-file source program, after `mvn dependency:copy-dependencies`
// in this directory:
//
//   java -cp 'target/dependency/*' TxnGroupCheck.java BOOTSTRAP PREFIX
//
//  1. Admin creates PREFIX-in, PREFIX-out and PREFIX-side (1 partition
//     each); 10 records are written to PREFIX-in.
//  2. A read_committed consumer A in group PREFIX-g subscribes to PREFIX-in
//     and polls until it has read all 10 (at most 60 s).
//  3. A transactional producer copies them to PREFIX-out and commits
//     offset 10 with A's group metadata in its transaction.
//  4. A consumer B joins the group, subscribed to PREFIX-side: the group
//     moves to a new epoch and A to it, keeping PREFIX-in's partition.
//  5. The producer then tries, each in a transaction of its own, to
//     commit offsets under metadata the coordinator must take or refuse:
//     A's epoch before B joined (taken: A has held the partition since
//     then, Kafka 4.4's assignment epochs), the epoch before that (refused:
//     A did not hold it yet), an epoch past A's, a member the group does
//     not have, a group that does not exist with a member's generation
//     (refused), and no member at all (taken, as from a producer that
//     manages no group). Each prints what sendOffsetsToTransaction and the
//     commit gave: the exception's class, whose message depends on the
//     request's version (Kafka 4.4 answers this client at TxnOffsetCommit
//     v6, which sluice does not serve: STALE_MEMBER_EPOCH and
//     GROUP_ID_NOT_FOUND there, ILLEGAL_GENERATION up to v5).
//  6. Prints the groups' committed offsets (Admin) and how many records a
//     read_committed consumer finds in PREFIX-out.
//

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class TxnGroupCheck {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String prefix = args[1];
        String in = prefix + "-in";
        String out = prefix + "-out";
        String side = prefix + "-side";
        String group = prefix + "-g";
        TopicPartition input = new TopicPartition(in, 0);
        Properties common = new Properties();
        common.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(common)) {
            admin.createTopics(List.of(new NewTopic(in, 1, (short) 1),
                    new NewTopic(out, 1, (short) 1), new NewTopic(side, 1, (short) 1))).all().get();
            try (KafkaProducer<byte[], byte[]> plain = new KafkaProducer<>(producerProps(common, null))) {
                for (int i = 0; i < 10; i++) {
                    plain.send(new ProducerRecord<>(in, ("record " + i).getBytes())).get();
                }
            }
            KafkaProducer<byte[], byte[]> producer =
                    new KafkaProducer<>(producerProps(common, prefix + "-t"));
            producer.initTransactions();
            try (KafkaConsumer<byte[], byte[]> consumer =
                    new KafkaConsumer<>(consumerProps(common, group))) {
                consumer.subscribe(List.of(in));
                List<ConsumerRecord<byte[], byte[]>> read = readAtLeast(consumer, 10);
                System.out.println("read from the input: " + read.size());

                ConsumerGroupMetadata member = consumer.groupMetadata();
                System.out.println("member epoch: " + member.generationId());
                List<ProducerRecord<byte[], byte[]>> copies = new java.util.ArrayList<>();
                for (ConsumerRecord<byte[], byte[]> r : read) {
                    copies.add(new ProducerRecord<>(out, r.value()));
                }
                producer = attempt("the member's metadata", producer, common, prefix, copies,
                        Map.of(input, new OffsetAndMetadata(10)), member);

                try (KafkaConsumer<byte[], byte[]> other =
                        new KafkaConsumer<>(consumerProps(common, group))) {
                    other.subscribe(List.of(side));
                    long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
                    while (consumer.groupMetadata().generationId() == member.generationId()
                            && System.nanoTime() < deadline) {
                        consumer.poll(Duration.ofMillis(100));
                        other.poll(Duration.ofMillis(100));
                    }
                    System.out.println("the member moved to epoch "
                            + consumer.groupMetadata().generationId() + ", still holding "
                            + consumer.assignment().size() + " partition");

                    producer = attempt("the member's older epoch, for a partition held since",
                            producer, common, prefix, List.of(),
                            Map.of(input, new OffsetAndMetadata(9)), member);

                    ConsumerGroupMetadata before = new ConsumerGroupMetadata(group,
                            member.generationId() - 1, member.memberId(), Optional.empty());
                    producer = attempt("an epoch before the partition was given", producer,
                            common, prefix, List.of(), Map.of(input, new OffsetAndMetadata(2)), before);

                    ConsumerGroupMetadata ahead = new ConsumerGroupMetadata(group,
                            consumer.groupMetadata().generationId() + 1, member.memberId(),
                            Optional.empty());
                    producer = attempt("an epoch past the member's", producer, common, prefix,
                            List.of(), Map.of(input, new OffsetAndMetadata(3)), ahead);

                    ConsumerGroupMetadata stranger = new ConsumerGroupMetadata(group,
                            member.generationId(), "not-a-member", Optional.empty());
                    producer = attempt("a member the group does not have", producer, common,
                            prefix, List.of(), Map.of(input, new OffsetAndMetadata(4)), stranger);
                }

                ConsumerGroupMetadata nowhere = new ConsumerGroupMetadata(prefix + "-nogroup",
                        5, "someone", Optional.empty());
                producer = attempt("a generation in a group that does not exist", producer,
                        common, prefix, List.of(), Map.of(input, new OffsetAndMetadata(5)), nowhere);

                ConsumerGroupMetadata anonymous = new ConsumerGroupMetadata(prefix + "-simple");
                producer = attempt("no member, another group", producer, common, prefix, List.of(),
                        Map.of(input, new OffsetAndMetadata(6)), anonymous);
            }
            producer.close();

            Map<TopicPartition, OffsetAndMetadata> committed =
                    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            System.out.println("committed for the group: " + offsetOf(committed.get(input)));
            Map<TopicPartition, OffsetAndMetadata> simple = admin
                    .listConsumerGroupOffsets(prefix + "-simple").partitionsToOffsetAndMetadata().get();
            System.out.println("committed for the simple group: " + offsetOf(simple.get(input)));
            Map<TopicPartition, OffsetAndMetadata> none = admin
                    .listConsumerGroupOffsets(prefix + "-nogroup").partitionsToOffsetAndMetadata().get();
            System.out.println("committed for the missing group: " + offsetOf(none.get(input)));
        }
        try (KafkaConsumer<byte[], byte[]> reader =
                new KafkaConsumer<>(consumerProps(common, prefix + "-reader"))) {
            reader.subscribe(List.of(out));
            System.out.println("committed records in the output: " + readAtLeast(reader, 10).size());
        }
    }

    /// Sends `records` and commits `offsets` in one transaction under
    /// `metadata` and prints what came of it; returns the producer to go on
    /// with (a new one when the error left this one unusable).
    static KafkaProducer<byte[], byte[]> attempt(String label, KafkaProducer<byte[], byte[]> producer,
            Properties common, String prefix, List<ProducerRecord<byte[], byte[]>> records,
            Map<TopicPartition, OffsetAndMetadata> offsets, ConsumerGroupMetadata metadata) {
        try {
            producer.beginTransaction();
            for (ProducerRecord<byte[], byte[]> r : records) {
                producer.send(r);
            }
            producer.sendOffsetsToTransaction(offsets, metadata);
            producer.commitTransaction();
            System.out.println(label + ": committed");
            return producer;
        } catch (Exception e) {
            System.out.println(label + ": " + describe(e));
        }
        try {
            producer.abortTransaction();
            System.out.println(label + ": aborted");
            return producer;
        } catch (Exception e) {
            System.out.println(label + ": abort refused, " + describe(e));
        }
        producer.close(Duration.ofSeconds(5));
        KafkaProducer<byte[], byte[]> fresh = new KafkaProducer<>(producerProps(common, prefix + "-t"));
        fresh.initTransactions();
        return fresh;
    }

    /// An exception's class, and its cause's when it wraps one.
    static String describe(Throwable e) {
        String what = e.getClass().getSimpleName();
        if (e.getCause() != null) {
            what += " caused by " + describe(e.getCause());
        }
        return what;
    }

    static String offsetOf(OffsetAndMetadata o) {
        return o == null ? "none" : Long.toString(o.offset());
    }

    /// Polls until `want` records were read (at most 60 s); returns them.
    static List<ConsumerRecord<byte[], byte[]>> readAtLeast(KafkaConsumer<byte[], byte[]> consumer,
            int want) {
        List<ConsumerRecord<byte[], byte[]>> read = new java.util.ArrayList<>();
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (read.size() < want && System.nanoTime() < deadline) {
            consumer.poll(Duration.ofMillis(200)).forEach(read::add);
        }
        return read;
    }

    static Properties producerProps(Properties common, String transactionalId) {
        Properties props = new Properties();
        props.putAll(common);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
        if (transactionalId != null) {
            props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        }
        return props;
    }

    static Properties consumerProps(Properties common, String group) {
        Properties props = new Properties();
        props.putAll(common);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
        return props;
    }
}
