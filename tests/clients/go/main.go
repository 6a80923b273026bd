// Command clientcheck drives a sluice broker with franz-go (kgo and kadm),
// with the client's defaults (franz-go produces idempotently, acks=all).
//
//	go build -o target/clientcheck . && target/clientcheck BOOTSTRAP roundtrip [TOPIC]
//	target/clientcheck BOOTSTRAP group [TOPIC [GROUP]]
//	target/clientcheck BOOTSTRAP txn [TOPIC]
//
// roundtrip: kadm creates a topic with 3 partitions and lists it; kgo
// produces 1000 keyed records over the partitions and waits for every ack;
// a second kgo client assigned the partitions (kgo.ConsumePartitions, from
// the start, no group) reads them all back, checking content, offsets,
// per-partition order and the idempotent producer id; kadm deletes the
// topic, and Metadata no longer names it.
//
// group: kadm creates a topic with 3 partitions and kgo produces the same
// 1000 records; then kgo clients consume in consumer groups
// (kgo.ConsumerGroup, ConsumeTopics, reset to the start, auto-commit off,
// franz-go's default cooperative-sticky balancer):
//  1. one client in GROUP polls every record exactly once (checked as in
//     roundtrip), assigned all 3 partitions;
//     CommitUncommittedOffsets; kadm FetchOffsets answers the end offsets;
//     kadm DescribeGroups shows GROUP Stable with it as the only member
//     (protocol type consumer, assigned all 3 partitions); it closes
//     (LeaveGroup), and DescribeGroups shows GROUP Empty, ListGroups names
//     it, FetchOffsets still answers the end offsets;
//  2. a new client in GROUP is assigned all 3 partitions, its committed
//     offsets (fetched when it joined) are the end offsets, and it polls no
//     record for 3 s; after it closes the commits are unchanged;
//  3. two clients in GROUP-2 each get a non-empty share of the partitions,
//     each partition goes to exactly one of them, and together they poll
//     every record exactly once (each partition's records from the member
//     assigned it); DescribeGroups shows 2 members; each commits and
//     closes, and FetchOffsets for GROUP-2 answers the end offsets.
//
// Both GROUP-2 members' first joins must land in one generation, which the
// broker's initial rebalance delay (group.initial.rebalance.delay.ms,
// Kafka's default 3 s) gives; with no delay the first could start alone
// and hand partitions over in a rebalance, and step 3 would report that.
// GROUP defaults to TOPIC-group.
//
// txn: transactions (kgo.TransactionalID, BeginTransaction, EndTransaction,
// kgo.FetchIsolationLevel):
//  1. kadm creates TOPIC with 1 partition, and Metadata shows its leader;
//  2. a transactional client (transactional ID TOPIC-tx) runs 4
//     transactions of 3 records ("t0-r0" ... "t3-r2"): 0 and 2 commit, 1
//     and 3 abort, each after ProduceSync has every ack (the aborted records
//     are in the log);
//  3. once the partition's read_committed and read_uncommitted end offsets
//     (kadm ListCommittedOffsets, ListEndOffsets) agree, at 16 (each marker
//     takes an offset), a read_committed consumer (ConsumePartitions from
//     offset 0 to that end) reads exactly t0-r0..t0-r2, t2-r0..t2-r2 at
//     their acked offsets, a read_uncommitted one all 12;
//  4. a second client with the same transactional ID initialises its
//     producer ID (fencing the first); the first one's BeginTransaction +
//     produce + EndTransaction (commit) fails with kerr.InvalidProducerEpoch
//     when the cluster's finalized transaction.version (ApiVersions) is 2,
//     Kafka 4.4's default (the produce is rejected), else with
//     kerr.ProducerFenced (AddPartitionsToTxn is); the second one commits
//     a transaction ("f-r0"), and read_committed then reads the 6 records
//     and f-r0, not the fenced client's record.
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
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	partitions = 3
	records    = 1000
	// Bound on each step that talks to the broker.
	stepTimeout = 30 * time.Second
	// Bound on reading everything back, or on joining a group.
	consumeTimeout = 60 * time.Second
	// How long a resumed group member must poll without a record.
	quiet = 3 * time.Second
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
	if len(os.Args) < 3 || len(os.Args) > 5 || (len(os.Args) == 5 && os.Args[2] != "group") {
		fmt.Fprintln(os.Stderr, "usage: clientcheck BOOTSTRAP roundtrip [TOPIC]\n"+
			"       clientcheck BOOTSTRAP group [TOPIC [GROUP]]\n"+
			"       clientcheck BOOTSTRAP txn [TOPIC]")
		os.Exit(2)
	}
	bootstrap, mode := os.Args[1], os.Args[2]
	topic := fmt.Sprintf("go-check-%d", os.Getpid())
	if len(os.Args) >= 4 {
		topic = os.Args[3]
	}
	group := topic + "-group"
	if len(os.Args) == 5 {
		group = os.Args[4]
	}
	var run func() error
	switch mode {
	case "roundtrip":
		run = func() error { return roundtrip(bootstrap, topic) }
	case "group":
		run = func() error { return groupMode(bootstrap, topic, group) }
	case "txn":
		run = func() error { return txnMode(bootstrap, topic) }
	default:
		fmt.Fprintf(os.Stderr, "unknown mode %s (expected roundtrip, group or txn)\n", mode)
		os.Exit(2)
	}
	time.AfterFunc(watchdog, func() {
		fmt.Printf("FAIL go franz-go: watchdog: still running after %v\n", watchdog)
		os.Exit(3)
	})

	start := time.Now()
	if err := run(); err != nil {
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

// producerClient is the client that administers and produces.
func producerClient(bootstrap string) (*kgo.Client, error) {
	return kgo.NewClient(
		kgo.SeedBrokers(bootstrap),
		kgo.ClientID("sluice-go-check"),
		kgo.WithLogger(logger()),
		kgo.RequestTimeoutOverhead(10*time.Second),
		kgo.ProduceRequestTimeout(stepTimeout),
		kgo.RecordDeliveryTimeout(60*time.Second),
	)
}

// createTopic creates topic with the partitions and checks the answer.
func createTopic(adm *kadm.Client, topic string) (kadm.TopicID, error) {
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	created, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err != nil {
		return created.ID, failf("CreateTopics %s: %v (%s)", topic, err, created.ErrMessage)
	}
	if created.NumPartitions != partitions || created.ReplicationFactor != 1 {
		return created.ID, failf("CreateTopics %s answered %d partitions, replication factor %d; expected %d, 1",
			topic, created.NumPartitions, created.ReplicationFactor, partitions)
	}
	ok("CreateTopics %s with %d partitions, topic id %s", topic, partitions, created.ID)
	return created.ID, nil
}

func roundtrip(bootstrap, topic string) error {
	cl, err := producerClient(bootstrap)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	id, err := createTopic(adm, topic)
	if err != nil {
		return err
	}
	if err := checkListed(adm, topic, id); err != nil {
		return err
	}

	acked, producerID, err := produce(cl, topic)
	if err != nil {
		return err
	}
	if err := consume(bootstrap, adm, topic, acked, producerID); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
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

// checkNext checks that r is the next record of its partition: got counts
// the records already received per partition, expected holds each
// partition's produced records in offset order. Counts r in got.
func checkNext(r *kgo.Record, expected map[int32][]sent, got map[int32]int, producerID int64, who string) error {
	p := r.Partition
	n := got[p]
	want := expected[p]
	if n >= len(want) {
		return failf("%spartition %d: record beyond the %d produced, at offset %d", who, p, len(want), r.Offset)
	}
	s := want[n]
	got[p] = n + 1
	switch {
	case r.Offset != s.offset:
		return failf("%spartition %d: record %d at offset %d, expected offset %d", who, p, n, r.Offset, s.offset)
	case !bytes.Equal(r.Key, key(s.index)):
		return failf("%spartition %d offset %d: key %s, expected %s", who, p, r.Offset, show(r.Key), show(key(s.index)))
	case !bytes.Equal(r.Value, value(s.index)):
		return failf("%spartition %d offset %d: value %s, expected %s", who, p, r.Offset, show(r.Value), show(value(s.index)))
	case len(r.Headers) != 0:
		return failf("%spartition %d offset %d: unexpected headers %v", who, p, r.Offset, r.Headers)
	case r.ProducerID != producerID:
		return failf("%spartition %d offset %d: producer id %d, the producer's was %d", who, p, r.Offset, r.ProducerID, producerID)
	case r.Timestamp.IsZero() || r.Timestamp.UnixMilli() <= 0:
		return failf("%spartition %d offset %d: timestamp %v", who, p, r.Offset, r.Timestamp)
	}
	return nil
}

// byPartition is each partition's produced records, in offset order.
func byPartition(acked []sent) map[int32][]sent {
	expected := map[int32][]sent{}
	for _, s := range acked {
		expected[s.partition] = append(expected[s.partition], s)
	}
	return expected
}

func consume(bootstrap string, adm *kadm.Client, topic string, acked []sent, producerID int64) error {
	expected := byPartition(acked)

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
			recErr = checkNext(r, expected, got, producerID, "")
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

// member is a kgo client in a consumer group, subscribed to one topic,
// with what the group assigned it.
type member struct {
	name  string
	topic string
	cl    *kgo.Client

	mu sync.Mutex
	// The partitions of topic it holds now.
	current map[int32]bool
	// Each assignment and revocation, in order, for messages.
	events []string
	// How many times it was given partitions.
	assignments int
}

func newMember(bootstrap, group, name, topic string) (*member, error) {
	m := &member{name: name, topic: topic, current: map[int32]bool{}}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap),
		kgo.ClientID("sluice-go-check-"+strings.ReplaceAll(name, " ", "-")),
		kgo.WithLogger(logger()),
		kgo.RequestTimeoutOverhead(10*time.Second),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
			m.update("assigned", assigned[topic], true)
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
			m.update("revoked", revoked[topic], false)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
			m.update("lost", lost[topic], false)
		}),
	)
	if err != nil {
		return nil, err
	}
	m.cl = cl
	return m, nil
}

func (m *member) update(what string, ps []int32, add bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(ps) == 0 {
		return
	}
	for _, p := range ps {
		if add {
			m.current[p] = true
		} else {
			delete(m.current, p)
		}
	}
	if add {
		m.assignments++
	}
	sorted := slices.Clone(ps)
	slices.Sort(sorted)
	m.events = append(m.events, fmt.Sprintf("%s %v", what, sorted))
}

// assigned is the partitions m holds, sorted.
func (m *member) assigned() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ps []int32
	for p := range m.current {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// timesAssigned is how many times m was given partitions.
func (m *member) timesAssigned() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.assignments
}

// String describes m's group state, for messages.
func (m *member) String() string {
	id, generation := m.cl.GroupMetadata()
	m.mu.Lock()
	defer m.mu.Unlock()
	return fmt.Sprintf("%s (member %s, generation %d, %v)", m.name, id, generation, m.events)
}

// poll is one PollFetches bounded by wait; a fetch error fails.
func (m *member) poll(wait time.Duration) (kgo.Fetches, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	fetches := m.cl.PollFetches(ctx)
	var fetchErr error
	fetches.EachError(func(t string, p int32, err error) {
		if fetchErr == nil && !errors.Is(err, context.DeadlineExceeded) {
			fetchErr = failf("%s: fetch %s/%d: %v (%v)", m.name, t, p, err, m)
		}
	})
	return fetches, fetchErr
}

// pollAll polls members in turn until they have received every record
// between them, checking each as the next of its partition (checkNext) and
// that no partition's records come from two members; then polls each once
// more, which must bring nothing. Returns the member that read each
// partition.
func pollAll(members []*member, expected map[int32][]sent, producerID int64, what string) (map[int32]*member, error) {
	got := map[int32]int{}
	reader := map[int32]*member{}
	total := 0
	deadline := time.Now().Add(consumeTimeout)
	for total < records {
		if time.Now().After(deadline) {
			return nil, failf("%s: polled %d of %d records within %v (per partition %v; %v)",
				what, total, records, consumeTimeout, got, members)
		}
		for _, m := range members {
			fetches, err := m.poll(200 * time.Millisecond)
			if err != nil {
				return nil, err
			}
			var recErr error
			fetches.EachRecord(func(r *kgo.Record) {
				if recErr != nil {
					return
				}
				who := fmt.Sprintf("%s: %s: ", what, m.name)
				if previous, seen := reader[r.Partition]; seen && previous != m {
					recErr = failf("%spartition %d offset %d, a partition %s read before", who, r.Partition, r.Offset, previous.name)
					return
				}
				reader[r.Partition] = m
				recErr = checkNext(r, expected, got, producerID, who)
				total++
			})
			if recErr != nil {
				return nil, recErr
			}
		}
	}
	for _, m := range members {
		extra, err := m.poll(500 * time.Millisecond)
		if err != nil {
			return nil, err
		}
		if n := extra.NumRecords(); n != 0 {
			return nil, failf("%s: %s polled %d records after the %d produced", what, m.name, n, records)
		}
	}
	return reader, nil
}

// checkOffsets checks that kadm's FetchOffsets for group answers end for
// every partition of topic (and nothing else).
func checkOffsets(adm *kadm.Client, group, topic string, end map[int32]int64, what string) error {
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	fetched, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = fetched.Error()
	}
	if err != nil {
		return failf("%s: FetchOffsets %s: %v", what, group, err)
	}
	got := map[int32]int64{}
	for t, ps := range fetched {
		for p, o := range ps {
			if t != topic {
				return failf("%s: FetchOffsets %s: a commit for %s/%d", what, group, t, p)
			}
			got[p] = o.At
		}
	}
	if !mapsEqual(got, end) {
		return failf("%s: FetchOffsets %s: %v, expected the end offsets %v", what, group, got, end)
	}
	return nil
}

func mapsEqual(a, b map[int32]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// committedOf is m's committed offsets for its topic, as its client knows
// them (from OffsetFetch when it joined, then from its own commits).
func committedOf(m *member) map[int32]int64 {
	got := map[int32]int64{}
	for p, o := range m.cl.CommittedOffsets()[m.topic] {
		got[p] = o.Offset
	}
	return got
}

// describeGroup describes group with kadm and checks it has no error and
// protocol type consumer.
func describeGroup(adm *kadm.Client, group string) (kadm.DescribedGroup, error) {
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return kadm.DescribedGroup{}, failf("DescribeGroups %s: %v", group, err)
	}
	d, exists := described[group]
	if !exists || d.Err != nil || d.ProtocolType != "consumer" {
		return d, failf("DescribeGroups %s: %+v", group, described)
	}
	return d, nil
}

// assignedTo is what DescribeGroups says member d was assigned of topic.
func assignedTo(d kadm.DescribedGroupMember, topic string) []int32 {
	var ps []int32
	if c, isConsumer := d.Assigned.AsConsumer(); isConsumer {
		for _, t := range c.Topics {
			if t.Topic == topic {
				ps = append(ps, t.Partitions...)
			}
		}
	}
	slices.Sort(ps)
	return ps
}

func groupMode(bootstrap, topic, group string) error {
	cl, err := producerClient(bootstrap)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := createTopic(adm, topic); err != nil {
		return err
	}
	acked, producerID, err := produce(cl, topic)
	if err != nil {
		return err
	}
	expected := byPartition(acked)
	end := map[int32]int64{}
	var all []int32
	for p := int32(0); p < partitions; p++ {
		end[p] = int64(len(expected[p]))
		all = append(all, p)
	}
	// Every client made here is closed on the way out (Close is idempotent).
	var members []*member
	defer func() {
		for _, m := range members {
			m.cl.Close()
		}
	}()
	join := func(group, name string) (*member, error) {
		m, err := newMember(bootstrap, group, name, topic)
		if err == nil {
			members = append(members, m)
		}
		return m, err
	}

	// 1. One member reads everything, commits, leaves.
	first, err := join(group, "consumer 1")
	if err != nil {
		return err
	}
	what := "consumer 1 in " + group
	if _, err := pollAll([]*member{first}, expected, producerID, what); err != nil {
		return err
	}
	if !slices.Equal(first.assigned(), all) || first.timesAssigned() != 1 {
		return failf("%s: expected all partitions %v, assigned once: %v", what, all, first)
	}
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	err = first.cl.CommitUncommittedOffsets(ctx)
	cancel()
	if err != nil {
		return failf("%s: CommitUncommittedOffsets: %v (%v)", what, err, first)
	}
	if got := committedOf(first); !mapsEqual(got, end) {
		return failf("%s: committed offsets %v after CommitUncommittedOffsets, expected the end offsets %v", what, got, end)
	}
	if err := checkOffsets(adm, group, topic, end, what); err != nil {
		return err
	}
	ok("%s (ConsumeTopics from the start): all %d records exactly once, content, producer id and per-partition "+
		"order exact, assigned partitions %v; CommitUncommittedOffsets, FetchOffsets = end offsets %v",
		what, records, all, end)

	d, err := describeGroup(adm, group)
	if err != nil {
		return err
	}
	memberID, _ := first.cl.GroupMetadata()
	if d.State != "Stable" || len(d.Members) != 1 || d.Members[0].MemberID != memberID ||
		d.Members[0].ClientID != "sluice-go-check-consumer-1" || !slices.Equal(assignedTo(d.Members[0], topic), all) {
		return failf("DescribeGroups %s with consumer 1 in it: %+v (consumer 1: %v)", group, d, first)
	}
	ok("DescribeGroups %s: Stable, protocol %s, 1 member assigned partitions %v", group, d.Protocol, all)
	first.cl.Close()
	d, err = describeGroup(adm, group)
	if err != nil {
		return err
	}
	if d.State != "Empty" || len(d.Members) != 0 {
		return failf("DescribeGroups %s after consumer 1 closed: %+v", group, d)
	}
	ok("DescribeGroups %s after consumer 1 closed: Empty, no members", group)
	ctx, cancel = context.WithTimeout(context.Background(), stepTimeout)
	listed, err := adm.ListGroups(ctx)
	cancel()
	if err != nil {
		return failf("ListGroups: %v", err)
	}
	if l, exists := listed[group]; !exists || l.ProtocolType != "consumer" {
		return failf("ListGroups: expected %s (protocol type consumer) in %+v", group, listed)
	}
	ok("ListGroups names %s", group)
	if err := checkOffsets(adm, group, topic, end, "after consumer 1 closed"); err != nil {
		return err
	}
	ok("FetchOffsets %s after consumer 1 closed: the end offsets %v", group, end)

	// 2. A new member of the same group resumes at the commits.
	second, err := join(group, "consumer 2")
	if err != nil {
		return err
	}
	what = "consumer 2 in " + group
	polled := 0
	deadline := time.Now().Add(consumeTimeout)
	for !slices.Equal(second.assigned(), all) {
		if time.Now().After(deadline) {
			return failf("%s: not assigned all partitions within %v: %v", what, consumeTimeout, second)
		}
		fetches, err := second.poll(200 * time.Millisecond)
		if err != nil {
			return err
		}
		polled += fetches.NumRecords()
	}
	for quietEnd := time.Now().Add(quiet); time.Now().Before(quietEnd); {
		fetches, err := second.poll(200 * time.Millisecond)
		if err != nil {
			return err
		}
		polled += fetches.NumRecords()
	}
	if polled != 0 || second.timesAssigned() != 1 {
		return failf("%s: polled %d records, expected none at the committed end offsets (%v)", what, polled, second)
	}
	if got := committedOf(second); !mapsEqual(got, end) {
		return failf("%s: committed offsets %v when it joined, expected the end offsets %v", what, got, end)
	}
	second.cl.Close()
	if err := checkOffsets(adm, group, topic, end, "after consumer 2 closed"); err != nil {
		return err
	}
	ok("%s resumed at the commits: assigned partitions %v, committed offsets %v, no record in %v; "+
		"commits unchanged after it closed", what, all, end, quiet)

	// 3. Two members of a new group share the partitions.
	group2 := group + "-2"
	a, err := join(group2, "member A")
	if err != nil {
		return err
	}
	b, err := join(group2, "member B")
	if err != nil {
		return err
	}
	pair := []*member{a, b}
	reader, err := pollAll(pair, expected, producerID, group2)
	if err != nil {
		return err
	}
	sa, sb := a.assigned(), b.assigned()
	_, genA := a.cl.GroupMetadata()
	_, genB := b.cl.GroupMetadata()
	if a.timesAssigned() != 1 || b.timesAssigned() != 1 || genA != genB {
		return failf("%s: expected each member assigned once, in one generation: %v, %v", group2, a, b)
	}
	union := append(slices.Clone(sa), sb...)
	sort.Slice(union, func(i, j int) bool { return union[i] < union[j] })
	if len(sa) == 0 || len(sb) == 0 || !slices.Equal(union, all) {
		return failf("%s: assignments do not split the partitions between the 2 members: %v, %v", group2, a, b)
	}
	for p, m := range reader {
		if !slices.Contains(m.assigned(), p) {
			return failf("%s: partition %d read by %s: %v, %v", group2, p, m.name, a, b)
		}
	}
	d, err = describeGroup(adm, group2)
	if err != nil {
		return err
	}
	idA, _ := a.cl.GroupMetadata()
	idB, _ := b.cl.GroupMetadata()
	var ids []string
	for _, dm := range d.Members {
		ids = append(ids, dm.MemberID)
	}
	slices.Sort(ids)
	want := []string{idA, idB}
	slices.Sort(want)
	if d.State != "Stable" || !slices.Equal(ids, want) {
		return failf("DescribeGroups %s with both members in it: %+v (%v, %v)", group2, d, a, b)
	}
	ok("DescribeGroups %s: Stable, protocol %s, 2 members", group2, d.Protocol)
	for _, m := range pair {
		ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
		err := m.cl.CommitUncommittedOffsets(ctx)
		cancel()
		if err != nil {
			return failf("%s: %s: CommitUncommittedOffsets: %v (%v)", group2, m.name, err, m)
		}
	}
	a.cl.Close()
	b.cl.Close()
	if err := checkOffsets(adm, group2, topic, end, "after both members closed"); err != nil {
		return err
	}
	ok("%s: member A assigned %v, member B assigned %v, all %d records exactly once between them, content and "+
		"per-partition order exact; both CommitUncommittedOffsets and Close; FetchOffsets = end offsets",
		group2, sa, sb, records)
	return nil
}

// txnWait bounds each wait of the txn mode (a topic usable, a read to the
// end, a transaction's produce or end).
const txnWait = 30 * time.Second

// readRec is a record read back: its offset and value.
type readRec struct {
	offset int64
	value  string
}

func (r readRec) String() string { return fmt.Sprintf("%d:%s", r.offset, r.value) }

func recsEqual(a, b []readRec) bool { return slices.Equal(a, b) }

// createSinglePartition creates topic with 1 partition and waits until a
// Metadata request (not kgo's cache) shows it led by a broker.
func createSinglePartition(cl *kgo.Client, adm *kadm.Client, topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), txnWait)
	defer cancel()
	created, err := adm.CreateTopic(ctx, 1, 1, nil, topic)
	if err != nil {
		return failf("CreateTopics %s: %v (%s)", topic, err, created.ErrMessage)
	}
	last := "no answer"
	for {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			last = err.Error()
		} else if len(resp.Topics) == 1 {
			t := resp.Topics[0]
			if t.ErrorCode == 0 && len(t.Partitions) == 1 && t.Partitions[0].ErrorCode == 0 && t.Partitions[0].Leader >= 0 {
				break
			}
			last = fmt.Sprintf("error %d, partitions %+v", t.ErrorCode, t.Partitions)
		}
		if ctx.Err() != nil {
			return failf("Metadata %s: not led by a broker within %v of CreateTopics (last answer: %s)", topic, txnWait, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ok("CreateTopics %s with 1 partition, led by a broker", topic)
	return nil
}

// transactionVersion is the cluster's finalized transaction.version feature
// level as ApiVersions answers it (0 when not advertised).
func transactionVersion(cl *kgo.Client) (int16, error) {
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	req := kmsg.NewPtrApiVersionsRequest()
	req.ClientSoftwareName = "sluice-go-check"
	req.ClientSoftwareVersion = "1.0.0"
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		return 0, failf("ApiVersions: %v", err)
	}
	for _, f := range resp.FinalizedFeatures {
		if f.Name == "transaction.version" {
			return f.MaxVersionLevel, nil
		}
	}
	return 0, nil
}

// txnClient is a transactional kgo client with transactional ID txID, its
// producer ID initialised (InitProducerID: this fences an older producer
// with the same ID).
func txnClient(bootstrap, txID, name string) (*kgo.Client, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap),
		kgo.ClientID("sluice-go-check-"+name),
		kgo.WithLogger(logger()),
		kgo.RequestTimeoutOverhead(10*time.Second),
		kgo.ProduceRequestTimeout(stepTimeout),
		kgo.RecordDeliveryTimeout(60*time.Second),
		kgo.TransactionalID(txID),
	)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), txnWait)
	defer cancel()
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		return nil, failf("%s: InitProducerID (transactional ID %s): %v", name, txID, err)
	}
	return cl, nil
}

// produceTxn produces values to partition 0 of topic in cl's open
// transaction and waits for every ack; returns where they went.
func produceTxn(cl *kgo.Client, topic string, values []string) ([]readRec, error) {
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Partition: 0, Value: []byte(v)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), txnWait)
	defer cancel()
	results := cl.ProduceSync(ctx, recs...)
	if err := results.FirstErr(); err != nil {
		return nil, err
	}
	acked := make([]readRec, len(values))
	for i, r := range recs {
		acked[i] = readRec{r.Offset, values[i]}
	}
	return acked, nil
}

// endTxn ends cl's transaction (commit or abort) within txnWait.
func endTxn(cl *kgo.Client, commit kgo.TransactionEndTry) error {
	ctx, cancel := context.WithTimeout(context.Background(), txnWait)
	defer cancel()
	return cl.EndTransaction(ctx, commit)
}

// stableEnd waits (up to txnWait) until partition 0 of topic has no open
// transaction: the read_committed end offset (kadm ListCommittedOffsets,
// the last stable offset) equals the read_uncommitted one (ListEndOffsets,
// the high watermark). A transaction's markers are written after its
// EndTxn is answered, so right after a commit or abort the last stable
// offset may still be at the transaction's first record. Returns that end.
func stableEnd(adm *kadm.Client, topic string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), txnWait)
	defer cancel()
	last := "no answer"
	for {
		committed, err1 := adm.ListCommittedOffsets(ctx, topic)
		ends, err2 := adm.ListEndOffsets(ctx, topic)
		if err := errors.Join(err1, err2); err != nil {
			last = err.Error()
		} else {
			c, cok := committed.Lookup(topic, 0)
			e, eok := ends.Lookup(topic, 0)
			if cok && eok && c.Err == nil && e.Err == nil && c.Offset == e.Offset {
				return e.Offset, nil
			}
			last = fmt.Sprintf("read_committed %+v, read_uncommitted %+v", c, e)
		}
		if ctx.Err() != nil {
			return 0, failf("ListOffsets %s/0: read_committed and read_uncommitted end offsets still differ %v "+
				"after the transactions ended (last answer: %s)", topic, txnWait, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readPartition reads partition 0 of topic from offset 0 up to end with a
// consumer of the isolation level (read_committed or not), keeping control
// records to see its position reach end; returns the data records.
func readPartition(bootstrap, topic string, end int64, committed bool) ([]readRec, error) {
	isolation, level := "read_uncommitted", kgo.ReadUncommitted()
	if committed {
		isolation, level = "read_committed", kgo.ReadCommitted()
	}
	ctx, cancel := context.WithTimeout(context.Background(), txnWait)
	defer cancel()
	consumer, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap),
		kgo.ClientID("sluice-go-check-"+strings.ReplaceAll(isolation, "_", "-")),
		kgo.WithLogger(logger()),
		kgo.RequestTimeoutOverhead(10*time.Second),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}}),
		kgo.FetchIsolationLevel(level),
		kgo.KeepControlRecords(),
	)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	var got []readRec
	position := int64(0)
	for position < end {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, failf("%s read of %s/0: at position %d of end offset %d after %v, read %v",
				isolation, topic, position, end, txnWait, got)
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			if fetchErr == nil {
				fetchErr = failf("%s fetch %s/%d: %v", isolation, t, p, err)
			}
		})
		if fetchErr != nil {
			return nil, fetchErr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			position = r.Offset + 1
			if !r.Attrs.IsControl() {
				got = append(got, readRec{r.Offset, string(r.Value)})
			}
		})
	}
	return got, nil
}

func txnMode(bootstrap, topic string) error {
	cl, err := producerClient(bootstrap)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	// 1. The topic.
	if err := createSinglePartition(cl, adm, topic); err != nil {
		return err
	}

	// 2. Four transactions: 0 and 2 commit, 1 and 3 abort.
	txID := topic + "-tx"
	first, err := txnClient(bootstrap, txID, "txn-1")
	if err != nil {
		return err
	}
	defer first.Close()
	ok("transactional client (transactional ID %s): InitProducerID", txID)
	var all, committed []readRec
	for t := 0; t < 4; t++ {
		if err := first.BeginTransaction(); err != nil {
			return failf("transaction %d: BeginTransaction: %v", t, err)
		}
		values := []string{fmt.Sprintf("t%d-r0", t), fmt.Sprintf("t%d-r1", t), fmt.Sprintf("t%d-r2", t)}
		acked, err := produceTxn(first, topic, values)
		if err != nil {
			return failf("transaction %d: produce: %v", t, err)
		}
		all = append(all, acked...)
		commit := t%2 == 0
		end, outcome := kgo.TryAbort, "aborted"
		if commit {
			end, outcome = kgo.TryCommit, "committed"
			committed = append(committed, acked...)
		}
		if err := endTxn(first, end); err != nil {
			return failf("transaction %d: EndTransaction (%s): %v", t, outcome, err)
		}
		ok("transaction %d: 3 records acked at %v, %s", t, acked, outcome)
	}
	for i := 1; i < len(all); i++ {
		if all[i].offset <= all[i-1].offset {
			return failf("acked offsets not increasing: %v", all)
		}
	}

	// 3. What each isolation level reads, once the last abort's marker is
	// written.
	end, err := stableEnd(adm, topic)
	if err != nil {
		return err
	}
	if end != 16 {
		return failf("%s/0: end offset %d after the 4 transactions, expected 16 (12 records, 4 markers)", topic, end)
	}
	rc, err := readPartition(bootstrap, topic, end, true)
	if err != nil {
		return err
	}
	if !recsEqual(rc, committed) {
		return failf("read_committed read %v, expected %v", rc, committed)
	}
	ok("read_committed from offset 0 to the end offset %d: exactly the committed records %v", end, rc)
	ru, err := readPartition(bootstrap, topic, end, false)
	if err != nil {
		return err
	}
	if !recsEqual(ru, all) {
		return failf("read_uncommitted read %v, expected %v", ru, all)
	}
	ok("read_uncommitted from offset 0 to the end offset %d: all 12 records", end)

	// 4. A second client with the same transactional ID fences the first.
	second, err := txnClient(bootstrap, txID, "txn-2")
	if err != nil {
		return err
	}
	defer second.Close()
	ok("a second client with transactional ID %s: InitProducerID", txID)
	tv, err := transactionVersion(cl)
	if err != nil {
		return err
	}
	var fenced error
	failedAt := "BeginTransaction"
	if fenced = first.BeginTransaction(); fenced == nil {
		failedAt = "produce"
		if _, fenced = produceTxn(first, topic, []string{"z-r0"}); fenced == nil {
			failedAt = "EndTransaction (commit)"
			fenced = endTxn(first, kgo.TryCommit)
		}
	}
	if fenced == nil {
		return failf("the fenced client's BeginTransaction + produce + EndTransaction (commit) succeeded")
	}
	// Transaction version 2 (Kafka 4.4's default; franz-go then adds the
	// partition with its Produce) answers the zombie's produce
	// INVALID_PRODUCER_EPOCH; before it, AddPartitionsToTxn answers
	// PRODUCER_FENCED (Kafka 4.4 downgraded to transaction.version 1 does).
	want := kerr.ProducerFenced
	if tv >= 2 {
		want = kerr.InvalidProducerEpoch
	}
	if !errors.Is(fenced, want) {
		return failf("the fenced client's %s failed with %v (%T), expected %v (transaction.version %d)",
			failedAt, fenced, fenced, want, tv)
	}
	ok("the first client is fenced: its %s failed with %v (transaction.version %d)", failedAt, fenced, tv)
	if err := second.BeginTransaction(); err != nil {
		return failf("the fencing client's BeginTransaction: %v", err)
	}
	f, err := produceTxn(second, topic, []string{"f-r0"})
	if err != nil {
		return failf("the fencing client's produce of f-r0: %v", err)
	}
	if err := endTxn(second, kgo.TryCommit); err != nil {
		return failf("the fencing client's EndTransaction (commit): %v", err)
	}
	afterFence := append(slices.Clone(committed), f...)
	if end, err = stableEnd(adm, topic); err != nil {
		return err
	}
	rc, err = readPartition(bootstrap, topic, end, true)
	if err != nil {
		return err
	}
	if !recsEqual(rc, afterFence) {
		return failf("read_committed after the fencing client's commit read %v, expected %v", rc, afterFence)
	}
	ok("the fencing client committed f-r0; read_committed to the end offset %d reads %v", end, rc)
	return nil
}
