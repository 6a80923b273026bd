// Command clientcheck drives a sluice broker with franz-go (kgo and kadm),
// with the client's defaults (franz-go produces idempotently, acks=all).
//
//	go build -o target/clientcheck . && target/clientcheck BOOTSTRAP roundtrip [TOPIC]
//
// roundtrip: kadm creates a topic with 3 partitions and lists it; kgo
// produces 1000 keyed records over the partitions and waits for every ack;
// a second kgo client assigned the partitions (kgo.ConsumePartitions, from
// the start, no group) reads them all back, checking content, offsets,
// per-partition order and the idempotent producer id; kadm deletes the
// topic, and Metadata no longer names it.
//
// Prints one "ok ..." line per step, then "PASS ..." and exits 0, or
// "FAIL ..." with what was expected and what came, and exits 1 (2 on bad
// arguments, 3 when the watchdog fires). SLUICE_CLIENT_LOG=debug (or info,
// warn, error) sets the level of the client's own log on stderr; the
// default is warn.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	partitions = 3
	records    = 1000
	// Bound on each step that talks to the broker.
	stepTimeout = 30 * time.Second
	// Bound on reading everything back.
	consumeTimeout = 60 * time.Second
	// The whole run; past it the process exits with status 3.
	watchdog = 150 * time.Second
)

type failure struct{ msg string }

func (f failure) Error() string { return f.msg }

func failf(format string, args ...any) error { return failure{fmt.Sprintf(format, args...)} }

// The i-th test record, the same as message(i) in tests/common.
func key(i int) []byte { return []byte(fmt.Sprintf("key-%d", i)) }
func value(i int) []byte {
	return []byte(fmt.Sprintf("value-%d-%s", i, strings.Repeat("abcdefgh", i%50)))
}

func show(b []byte) string {
	if b == nil {
		return "nil"
	}
	return fmt.Sprintf("%q", b)
}

func ok(format string, args ...any) {
	fmt.Printf("ok "+format+"\n", args...)
}

func logger() kgo.Logger {
	level := kgo.LogLevelWarn
	switch strings.ToLower(os.Getenv("SLUICE_CLIENT_LOG")) {
	case "debug", "trace":
		level = kgo.LogLevelDebug
	case "info":
		level = kgo.LogLevelInfo
	case "error":
		level = kgo.LogLevelError
	case "none", "off":
		level = kgo.LogLevelNone
	}
	return kgo.BasicLogger(os.Stderr, level, func() string {
		return time.Now().Format("15:04:05.000 ")
	})
}

func clientVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/twmb/franz-go" {
				return dep.Version
			}
		}
	}
	return "unknown"
}

func main() {
	if len(os.Args) < 3 || len(os.Args) > 4 {
		fmt.Fprintln(os.Stderr, "usage: clientcheck BOOTSTRAP roundtrip [TOPIC]")
		os.Exit(2)
	}
	bootstrap, mode := os.Args[1], os.Args[2]
	topic := fmt.Sprintf("go-check-%d", os.Getpid())
	if len(os.Args) == 4 {
		topic = os.Args[3]
	}
	if mode != "roundtrip" {
		fmt.Fprintf(os.Stderr, "unknown mode %s (expected roundtrip)\n", mode)
		os.Exit(2)
	}
	time.AfterFunc(watchdog, func() {
		fmt.Printf("FAIL go franz-go: watchdog: still running after %v\n", watchdog)
		os.Exit(3)
	})

	start := time.Now()
	if err := roundtrip(bootstrap, topic); err != nil {
		var f failure
		if errors.As(err, &f) {
			fmt.Printf("FAIL go franz-go %s %s: %s\n", clientVersion(), mode, f.msg)
		} else {
			fmt.Printf("FAIL go franz-go %s %s: unexpected error: %v\n", clientVersion(), mode, err)
		}
		os.Exit(1)
	}
	fmt.Printf("PASS go franz-go %s %s in %d ms\n", clientVersion(), mode, time.Since(start).Milliseconds())
}

// sent is where the broker said a record went.
type sent struct {
	index     int
	partition int32
	offset    int64
}

func roundtrip(bootstrap, topic string) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap),
		kgo.ClientID("sluice-go-check"),
		kgo.WithLogger(logger()),
		kgo.RequestTimeoutOverhead(10*time.Second),
		kgo.ProduceRequestTimeout(stepTimeout),
		kgo.RecordDeliveryTimeout(60*time.Second),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	created, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err != nil {
		return failf("CreateTopics %s: %v (%s)", topic, err, created.ErrMessage)
	}
	if created.NumPartitions != partitions || created.ReplicationFactor != 1 {
		return failf("CreateTopics %s answered %d partitions, replication factor %d; expected %d, 1",
			topic, created.NumPartitions, created.ReplicationFactor, partitions)
	}
	ok("CreateTopics %s with %d partitions, topic id %s", topic, partitions, created.ID)

	if err := checkListed(adm, topic, created.ID); err != nil {
		return err
	}

	acked, producerID, err := produce(cl, topic)
	if err != nil {
		return err
	}
	if err := consume(bootstrap, adm, topic, acked, producerID); err != nil {
		return err
	}

	ctx, cancel = context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	deleted, err := adm.DeleteTopic(ctx, topic)
	if err != nil {
		return failf("DeleteTopics %s: %v (%s)", topic, err, deleted.ErrMessage)
	}
	ok("DeleteTopics %s", topic)
	// kadm's ListTopics answers from kgo's metadata cache (up to
	// MetadataMinAge, 5 s, old), so ask the broker directly. Deleting is
	// eventually visible in Kafka; allow a short while.
	deletedAt := time.Now()
	for {
		req := kmsg.NewPtrMetadataRequest()
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return failf("Metadata after DeleteTopics: %v", err)
		}
		var names []string
		for _, t := range resp.Topics {
			if t.Topic != nil {
				names = append(names, *t.Topic)
			}
		}
		if !slices.Contains(names, topic) {
			break
		}
		if time.Since(deletedAt) > 10*time.Second {
			return failf("Metadata 10 s after DeleteTopics still names %s: %v", topic, names)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ok("Metadata no longer names %s (after %d ms)", topic, time.Since(deletedAt).Milliseconds())
	return nil
}

func checkListed(adm *kadm.Client, topic string, id kadm.TopicID) error {
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	all, err := adm.ListTopics(ctx)
	if err != nil {
		return failf("ListTopics: %v", err)
	}
	if !all.Has(topic) {
		return failf("ListTopics: expected %s in %v", topic, all.Names())
	}
	d := all[topic]
	if d.Err != nil {
		return failf("ListTopics: %s: %v", topic, d.Err)
	}
	if d.ID != id {
		return failf("ListTopics: %s has topic id %s, CreateTopics answered %s", topic, d.ID, id)
	}
	if d.IsInternal {
		return failf("ListTopics: %s is internal", topic)
	}
	if len(d.Partitions) != partitions {
		return failf("ListTopics: %s has partitions %v, expected %d", topic, d.Partitions.Numbers(), partitions)
	}
	for p := int32(0); p < partitions; p++ {
		pd, exists := d.Partitions[p]
		if !exists {
			return failf("ListTopics: %s has no partition %d", topic, p)
		}
		if pd.Err != nil || pd.Leader != 0 || len(pd.Replicas) != 1 || len(pd.ISR) != 1 {
			return failf("ListTopics: %s partition %d: leader %d replicas %v isr %v err %v",
				topic, p, pd.Leader, pd.Replicas, pd.ISR, pd.Err)
		}
	}
	ok("ListTopics names %s: %d partitions led by broker 0, same topic id", topic, partitions)
	return nil
}

func produce(cl *kgo.Client, topic string) ([]sent, int64, error) {
	recs := make([]*kgo.Record, records)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: key(i), Value: value(i)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	results := cl.ProduceSync(ctx, recs...)
	// Results come in the order the acks completed, not the send order.
	index := make(map[*kgo.Record]int, records)
	for i, r := range recs {
		index[r] = i
	}
	if len(results) != records {
		return nil, 0, failf("produce: %d results for %d records", len(results), records)
	}
	acked := make([]sent, records)
	producerID := int64(-1)
	for _, r := range results {
		i, known := index[r.Record]
		if !known {
			return nil, 0, failf("produce: a result for a record that was not sent: %+v", r.Record)
		}
		delete(index, r.Record)
		if r.Err != nil {
			return nil, 0, failf("produce: record %d: %v", i, r.Err)
		}
		if r.Record.ProducerID < 0 {
			return nil, 0, failf("produce: record %d sent without a producer id (not idempotent)", i)
		}
		if producerID == -1 {
			producerID = r.Record.ProducerID
		} else if r.Record.ProducerID != producerID {
			return nil, 0, failf("produce: record %d has producer id %d, earlier ones %d", i, r.Record.ProducerID, producerID)
		}
		acked[i] = sent{index: i, partition: r.Record.Partition, offset: r.Record.Offset}
	}
	// In order and idempotent: each partition's offsets are 0, 1, 2, ...
	// in send order.
	next := map[int32]int64{}
	for _, s := range acked {
		if s.offset != next[s.partition] {
			return nil, 0, failf("produce: record %d acked at partition %d offset %d, expected offset %d",
				s.index, s.partition, s.offset, next[s.partition])
		}
		next[s.partition]++
	}
	if len(next) != partitions {
		return nil, 0, failf("produce: %d keys went to partitions %v only", records, next)
	}
	ok("produced %d records (idempotent, producer id %d), acked with contiguous offsets per partition %v",
		records, producerID, next)
	return acked, producerID, nil
}

func consume(bootstrap string, adm *kadm.Client, topic string, acked []sent, producerID int64) error {
	expected := map[int32][]sent{}
	for _, s := range acked {
		expected[s.partition] = append(expected[s.partition], s)
	}

	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return failf("ListOffsets (earliest): %v", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return failf("ListOffsets (latest): %v", err)
	}
	endOffsets := map[int32]int64{}
	for p := int32(0); p < partitions; p++ {
		s, sok := starts.Lookup(topic, p)
		e, eok := ends.Lookup(topic, p)
		want := int64(len(expected[p]))
		if !sok || s.Err != nil || s.Offset != 0 {
			return failf("ListOffsets (earliest) %s/%d: %+v, expected offset 0", topic, p, s)
		}
		if !eok || e.Err != nil || e.Offset != want {
			return failf("ListOffsets (latest) %s/%d: %+v, expected offset %d", topic, p, e, want)
		}
		endOffsets[p] = e.Offset
	}
	ok("start offsets all 0, end offsets %v", endOffsets)

	assign := map[int32]kgo.Offset{}
	for p := int32(0); p < partitions; p++ {
		assign[p] = kgo.NewOffset().AtStart()
	}
	consumer, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap),
		kgo.ClientID("sluice-go-check-consumer"),
		kgo.WithLogger(logger()),
		kgo.RequestTimeoutOverhead(10*time.Second),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: assign}),
	)
	if err != nil {
		return err
	}
	defer consumer.Close()

	got := map[int32]int{}
	total := 0
	ctx, cancel = context.WithTimeout(context.Background(), consumeTimeout)
	defer cancel()
	for total < records {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			return failf("consumed %d of %d records within %v (per partition %v)", total, records, consumeTimeout, got)
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			if fetchErr == nil {
				fetchErr = failf("fetch %s/%d: %v", t, p, err)
			}
		})
		if fetchErr != nil {
			return fetchErr
		}
		var recErr error
		fetches.EachRecord(func(r *kgo.Record) {
			if recErr != nil {
				return
			}
			p := r.Partition
			n := got[p]
			want := expected[p]
			if n >= len(want) {
				recErr = failf("partition %d: record beyond the %d produced, at offset %d", p, len(want), r.Offset)
				return
			}
			s := want[n]
			switch {
			case r.Offset != s.offset:
				recErr = failf("partition %d: record %d at offset %d, expected offset %d", p, n, r.Offset, s.offset)
			case !bytes.Equal(r.Key, key(s.index)):
				recErr = failf("partition %d offset %d: key %s, expected %s", p, r.Offset, show(r.Key), show(key(s.index)))
			case !bytes.Equal(r.Value, value(s.index)):
				recErr = failf("partition %d offset %d: value %s, expected %s", p, r.Offset, show(r.Value), show(value(s.index)))
			case len(r.Headers) != 0:
				recErr = failf("partition %d offset %d: unexpected headers %v", p, r.Offset, r.Headers)
			case r.ProducerID != producerID:
				recErr = failf("partition %d offset %d: producer id %d, the producer's was %d", p, r.Offset, r.ProducerID, producerID)
			case r.Timestamp.IsZero() || r.Timestamp.UnixMilli() <= 0:
				recErr = failf("partition %d offset %d: timestamp %v", p, r.Offset, r.Timestamp)
			}
			got[p] = n + 1
			total++
		})
		if recErr != nil {
			return recErr
		}
	}
	// Nothing after the last record.
	short, cancelShort := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancelShort()
	extra := consumer.PollFetches(short)
	if n := extra.NumRecords(); n != 0 {
		return failf("%d records after the %d produced", n, records)
	}
	ok("consumed %d records (ConsumePartitions from the start), content, producer id and per-partition order exact %v",
		records, got)
	return nil
}
