// Drives a sluice broker with kafkajs. After `npm ci` in this directory:
//
//   node check.js BOOTSTRAP produce TOPIC
//   node check.js BOOTSTRAP consume TOPIC GROUP
//   node check.js BOOTSTRAP delete TOPIC
//   node check.js BOOTSTRAP txn TOPIC
//
// produce: admin createTopics (3 partitions), listTopics,
// fetchTopicMetadata; 1000 keyed records (message(i) of tests/common),
// spread over the partitions by kafkajs's default partitioner, in sends of
// 100: records 0..499 with the default producer (acks=-1, not
// idempotent), records 500..999 with an idempotent producer
// (idempotent: true, maxInFlightRequests: 1). Checks that every send is
// acked without error at the base offset that follows the partition's
// previous records, and that admin fetchTopicOffsets reports low 0 and
// high = records acked, per partition. The topic is left for the caller
// to read back (tests/other_clients.rs also reads it with kcat and
// compares it with the "layout" lines printed here) and for `consume`.
//
// consume (after produce, on the topic it left): kafkajs consumers in
// consumer groups, as an application runs them (subscribe, run).
//  1. One consumer in GROUP (fromBeginning, autoCommit off) reads every
//     record exactly once: the key names record i, the value is message(i)'s,
//     the partition is the one kafkajs's partitioner picks for the key, and
//     per partition the offsets run 0, 1, 2, ... with i increasing (the
//     order produce sent them). It was assigned all 3 partitions; it
//     commits the high watermarks with commitOffsets; describeGroups shows
//     GROUP Stable with it as the only member (protocol type consumer, its
//     assignment all 3 partitions); it disconnects (LeaveGroup), and
//     describeGroups shows GROUP Empty, listGroups names it, and
//     fetchOffsets answers offset = high watermark for each partition.
//  2. A second consumer in GROUP (again fromBeginning, autoCommit on)
//     joins, is assigned all 3 partitions, and gets no record in 3 s after
//     its first fetch: it resumed from the committed offsets. After it
//     disconnects the committed offsets are unchanged.
//  3. Two consumers in the new group GROUP-2 (fromBeginning, autoCommit
//     on) run side by side: each is assigned a non-empty share of the
//     partitions, each partition goes to exactly one of them, and together
//     they read every record exactly once (each partition's records all by
//     the member assigned it). describeGroups shows GROUP-2 Stable with 2
//     members; after both disconnect, fetchOffsets for GROUP-2 answers the
//     high watermarks (the auto-commits). Both members' first join must
//     land in one generation, which the broker's initial rebalance delay
//     (group.initial.rebalance.delay.ms, Kafka's default 3 s) gives; with
//     no delay the first member could start alone and hand partitions over
//     in a rebalance, and step 3 would report that.
//
// delete: admin deleteTopics, then listTopics no longer names the topic.
//
// txn: transactions (producer.transaction(), send, commit/abort;
// consumers with readUncommitted false/true):
//  1. admin createTopics TOPIC (1 partition), fetchTopicMetadata until it
//     has a leader;
//  2. a transactional producer (transactionalId TOPIC-tx) runs 4
//     transactions of 3 records ("t0-r0" ... "t3-r2"): 0 and 2 commit, 1
//     and 3 abort, each after its send is acked (the aborted records are in
//     the log);
//  3. once admin fetchTopicOffsets (read_committed) answers high 16 (12
//     records, 4 markers: the last marker is written), a read_committed
//     consumer (group TOPIC-rc, from the beginning) reads exactly
//     t0-r0..t0-r2, t2-r0..t2-r2 at their acked offsets, and a
//     read_uncommitted one (group TOPIC-ru) all 12, nothing more in 1 s;
//  4. a second producer with the same transactionalId begins a transaction
//     (InitProducerId, fencing the first); the first one's transaction() +
//     send + commit fails with INVALID_PRODUCER_EPOCH (what Kafka 4.4
//     answers kafkajs's AddPartitionsToTxn v1); the second one commits
//     "f-r0", and read_committed (group TOPIC-rc2) then reads the 6 records
//     and f-r0, not the fenced producer's record.
//
// Prints one "ok ..." line per step, and for produce one line per
// partition
//   layout P: I0,I1,...
// (the record indices at offsets 0, 1, ... of partition P), then
// "PASS ..." and exits 0, or "FAIL ..." and exits 1 (2 on bad arguments,
// 3 when the watchdog fires). The client's log goes to stderr at WARN;
// KAFKAJS_LOG_LEVEL=DEBUG (or INFO, ERROR, NOTHING), or SLUICE_CLIENT_LOG
// (debug, info, ...), changes it.
'use strict'

// SLUICE_CLIENT_LOG (debug, info, warn, error), the switch the other
// client programs read, sets KAFKAJS_LOG_LEVEL unless that is set.
if (!process.env.KAFKAJS_LOG_LEVEL && process.env.SLUICE_CLIENT_LOG) {
  process.env.KAFKAJS_LOG_LEVEL = process.env.SLUICE_CLIENT_LOG.toUpperCase()
}

const { AssignerProtocol, Kafka, Partitioners, logLevel } = require('kafkajs')
const kafkajsVersion = require('kafkajs/package.json').version

const PARTITIONS = 3
const RECORDS = 1000
const SEND_SIZE = 100
// The whole run; past it the process exits with status 3.
const WATCHDOG_MS = 150_000

class Failure extends Error {}

// What the program is doing, for an unexpected error's message.
let step = 'starting'

const check = (condition, message) => {
  if (!condition) throw new Failure(message)
}
const ok = what => process.stdout.write(`ok ${what}\n`)

// The i-th test record, the same as message(i) in tests/common.
const key = i => Buffer.from(`key-${i}`)
const value = i => Buffer.from(`value-${i}-${'abcdefgh'.repeat(i % 50)}`)

// kafkajs's log as JSON lines on stderr (stdout carries the results).
const stderrLogCreator = () => ({ namespace, label, log }) => {
  process.stderr.write(JSON.stringify({ level: label, namespace, ...log }) + '\n')
}

const client = bootstrap =>
  new Kafka({
    clientId: 'sluice-kafkajs-check',
    brokers: [bootstrap],
    // KAFKAJS_LOG_LEVEL, when set, overrides this (kafkajs reads it).
    logLevel: logLevel.WARN,
    logCreator: stderrLogCreator,
    connectionTimeout: 5000,
    requestTimeout: 30000,
  })

async function produceMode(kafka, topic) {
  const admin = kafka.admin()
  step = 'admin connect'
  await admin.connect()
  try {
    step = 'createTopics'
    const created = await admin.createTopics({
      // CreateTopics v3 (kafkajs's newest) needs an explicit replication
      // factor: -1 for the broker's default came with v4.
      topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
      waitForLeaders: true,
      timeout: 30000,
    })
    check(created === true, `createTopics ${topic} answered ${created}, expected true`)
    ok(`createTopics ${topic} with ${PARTITIONS} partitions`)

    step = 'listTopics'
    const names = await admin.listTopics()
    check(names.includes(topic), `listTopics: expected ${topic} in ${JSON.stringify(names)}`)
    ok(`listTopics names ${topic}`)

    step = 'fetchTopicMetadata'
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
    check(topics.length === 1 && topics[0].name === topic, `fetchTopicMetadata: ${JSON.stringify(topics)}`)
    const partitions = [...topics[0].partitions].sort((a, b) => a.partitionId - b.partitionId)
    check(
      partitions.length === PARTITIONS &&
        partitions.every(
          (p, n) =>
            p.partitionId === n &&
            p.partitionErrorCode === 0 &&
            p.leader === 0 &&
            p.replicas.length === 1 &&
            p.isr.length === 1
        ),
      `fetchTopicMetadata: partitions ${JSON.stringify(partitions)}`
    )
    ok(`fetchTopicMetadata: ${PARTITIONS} partitions led by broker 0`)

    // Record indices in offset order, per partition.
    const layout = new Map()
    for (let p = 0; p < PARTITIONS; p++) layout.set(p, [])

    await produceWith(kafka, topic, layout, 'default producer', {}, 0, RECORDS / 2)
    await produceWith(
      kafka,
      topic,
      layout,
      'idempotent producer',
      { idempotent: true, maxInFlightRequests: 1 },
      RECORDS / 2,
      RECORDS
    )
    const counts = [...layout].map(([p, indices]) => `${p}=${indices.length}`).join(' ')
    check(
      [...layout.values()].every(indices => indices.length > 0),
      `${RECORDS} keys did not reach every partition: ${counts}`
    )

    step = 'fetchTopicOffsets'
    const offsets = await admin.fetchTopicOffsets(topic)
    offsets.sort((a, b) => a.partition - b.partition)
    check(offsets.length === PARTITIONS, `fetchTopicOffsets: ${JSON.stringify(offsets)}`)
    for (const o of offsets) {
      const want = layout.get(o.partition).length
      check(
        o.low === '0' && o.high === String(want) && o.offset === String(want),
        `fetchTopicOffsets partition ${o.partition}: ${JSON.stringify(o)}, expected low 0, high ${want}`
      )
    }
    ok(`fetchTopicOffsets: low 0, high ${offsets.map(o => `${o.partition}=${o.high}`).join(' ')}`)

    for (const [p, indices] of layout) {
      process.stdout.write(`layout ${p}: ${indices.join(',')}\n`)
    }
  } finally {
    await admin.disconnect()
  }
}

// Sends records first..last-1 in sends of SEND_SIZE with a producer made
// with `options`, checking each ack and appending to `layout`.
async function produceWith(kafka, topic, layout, what, options, first, last) {
  // kafkajs's default partitioner (murmur2 of the key, as the Java client),
  // wrapped to learn which partition it picks for each message.
  const chosen = new Map()
  const producer = kafka.producer({
    ...options,
    createPartitioner: (...args) => {
      const inner = Partitioners.DefaultPartitioner(...args)
      return params => {
        const partition = inner(params)
        chosen.set(params.message, partition)
        return partition
      }
    },
  })
  step = `${what}: connect`
  await producer.connect()
  try {
    for (let start = first; start < last; start += SEND_SIZE) {
      const end = Math.min(start + SEND_SIZE, last)
      const messages = []
      for (let i = start; i < end; i++) messages.push({ key: key(i), value: value(i) })
      step = `${what}: send of records ${start}..${end - 1}`
      const acks = await producer.send({ topic, messages })
      // This send's records, per partition, in send order.
      const sent = new Map()
      messages.forEach((m, n) => {
        const p = chosen.get(m)
        check(p !== undefined, `${what}: no partition recorded for record ${start + n}`)
        if (!sent.has(p)) sent.set(p, [])
        sent.get(p).push(start + n)
      })
      check(
        acks.length === sent.size,
        `${what}: send of records ${start}..${end - 1} acked ${JSON.stringify(acks)}, ` +
          `expected one ack for each of partitions ${[...sent.keys()]}`
      )
      for (const ack of acks) {
        const indices = sent.get(ack.partition)
        const before = layout.get(ack.partition)
        check(
          ack.topicName === topic && indices !== undefined && ack.errorCode === 0,
          `${what}: send of records ${start}..${end - 1}: unexpected ack ${JSON.stringify(ack)}`
        )
        check(
          ack.baseOffset === String(before.length),
          `${what}: send of records ${start}..${end - 1}: partition ${ack.partition} acked at base offset ` +
            `${ack.baseOffset}, expected ${before.length} (${JSON.stringify(ack)})`
        )
        before.push(...indices)
      }
    }
  } finally {
    step = `${what}: disconnect`
    await producer.disconnect()
  }
  ok(
    `${what}: records ${first}..${last - 1} acked at the expected offsets (${JSON.stringify(options)})`
  )
}

// Bound on reading everything, or on joining a group.
const CONSUME_MS = 60_000
// How long a resumed consumer must stay without records after its first
// fetch.
const QUIET_MS = 3000

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// Waits for `condition()` to hold, polling; a Failure with `what()` after
// `ms`.
async function waitUntil(condition, ms, what) {
  const deadline = Date.now() + ms
  while (!condition()) {
    check(Date.now() < deadline, `${what()} (after ${ms} ms)`)
    await sleep(20)
  }
}

// One kafkajs consumer in a group, subscribed to `topic` from the
// beginning and running; keeps what it received and what the group told
// it. `crashes` collects kafkajs's consumer.crash events: any is a failure.
class Member {
  constructor(kafka, groupId, name, autoCommit) {
    this.name = name
    this.groupId = groupId
    this.autoCommit = autoCommit
    // Short long-polls: an idle fetch returns within 0.5 s.
    this.consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 500 })
    this.records = []
    this.joins = []
    this.fetches = 0
    this.crashes = []
    const { events } = this.consumer
    this.consumer.on(events.GROUP_JOIN, e => this.joins.push(e.payload))
    this.consumer.on(events.FETCH, () => this.fetches++)
    this.consumer.on(events.CRASH, e => this.crashes.push(e.payload.error))
  }

  async start(topic) {
    step = `${this.name}: connect`
    await this.consumer.connect()
    step = `${this.name}: subscribe`
    await this.consumer.subscribe({ topics: [topic], fromBeginning: true })
    step = `${this.name}: run`
    await this.consumer.run({
      autoCommit: this.autoCommit,
      eachMessage: async ({ topic, partition, message }) => {
        this.records.push({ member: this.name, topic, partition, message })
      },
    })
  }

  // The partitions of `topic` the last join assigned, sorted.
  assigned(topic) {
    const last = this.joins[this.joins.length - 1]
    return last ? [...(last.memberAssignment[topic] || [])].sort((a, b) => a - b) : []
  }

  checkNoCrash() {
    check(
      this.crashes.length === 0,
      `${this.name} (group ${this.groupId}) crashed: ${this.crashes.map(e => e.stack || e).join('; ')}`
    )
  }

  async stop() {
    step = `${this.name}: disconnect`
    await this.consumer.disconnect()
  }
}

// Checks that `records` (from any members) are every produced record
// exactly once: key-i with message(i)'s value, on the partition kafkajs's
// partitioner picks for the key, at offsets 0, 1, ... per partition with
// i increasing, high[p] records in partition p. Returns the member that
// read each partition.
function checkAllOnce(topic, records, high, what) {
  const partitioner = Partitioners.DefaultPartitioner()
  const partitionMetadata = [...Array(PARTITIONS).keys()].map(p => ({ partitionId: p, leader: 0 }))
  const byPartition = new Map()
  for (let p = 0; p < PARTITIONS; p++) byPartition.set(p, [])
  const seen = new Set()
  for (const r of records) {
    const { message, partition } = r
    const at = `${what}: ${r.member} got partition ${partition} offset ${message.offset}`
    check(r.topic === topic && byPartition.has(partition), `${at} of topic ${r.topic}`)
    const keyText = message.key === null ? null : message.key.toString()
    const m = keyText && /^key-(\d+)$/.exec(keyText)
    check(m, `${at}: key ${JSON.stringify(keyText)}, expected key-I`)
    const i = Number(m[1])
    check(i < RECORDS, `${at}: key ${keyText} names no produced record`)
    check(!seen.has(i), `${at}: record ${i} (${keyText}) a second time`)
    seen.add(i)
    check(
      message.value !== null && message.value.equals(value(i)),
      `${at}: value ${JSON.stringify(message.value && message.value.toString())}, expected ` +
        JSON.stringify(value(i).toString())
    )
    check(
      message.headers && Object.keys(message.headers).length === 0,
      `${at}: unexpected headers ${JSON.stringify(message.headers)}`
    )
    const want = partitioner({ topic, partitionMetadata, message: { key: key(i) } })
    check(partition === want, `${at}: record ${i} belongs in partition ${want}`)
    byPartition.get(partition).push({ i, offset: Number(message.offset), member: r.member })
  }
  const readers = new Map()
  for (const [p, got] of byPartition) {
    check(
      got.length === high.get(p),
      `${what}: partition ${p}: got ${got.length} records, its high watermark is ${high.get(p)}`
    )
    got.forEach((g, n) => {
      check(
        g.offset === n && (n === 0 || got[n - 1].i < g.i),
        `${what}: partition ${p}: record ${g.i} as the ${n}th received, at offset ${g.offset}` +
          (n > 0 ? ` (previous: record ${got[n - 1].i})` : '')
      )
    })
    const members = [...new Set(got.map(g => g.member))]
    check(members.length <= 1, `${what}: partition ${p} read by several members: ${members}`)
    readers.set(p, members[0])
  }
  check(seen.size === RECORDS, `${what}: ${seen.size} distinct records, expected ${RECORDS}`)
  return readers
}

// describeGroups for one group, checked for no error and protocol type
// consumer.
async function describeGroup(admin, groupId) {
  step = `describeGroups ${groupId}`
  const { groups } = await admin.describeGroups([groupId])
  check(
    groups.length === 1 && groups[0].groupId === groupId && groups[0].errorCode === 0,
    `describeGroups ${groupId}: ${JSON.stringify(groups)}`
  )
  const g = groups[0]
  check(
    g.protocolType === 'consumer',
    `describeGroups ${groupId}: protocol type ${JSON.stringify(g.protocolType)}, expected consumer`
  )
  return g
}

// Checks that GROUP's committed offsets for `topic` are `high`.
async function checkCommitted(admin, groupId, topic, high, what) {
  step = `fetchOffsets ${groupId}`
  const answer = await admin.fetchOffsets({ groupId, topics: [topic] })
  check(
    answer.length === 1 && answer[0].topic === topic,
    `fetchOffsets ${groupId} ${what}: ${JSON.stringify(answer)}`
  )
  const committed = new Map(answer[0].partitions.map(p => [p.partition, p.offset]))
  check(
    committed.size === PARTITIONS &&
      [...high].every(([p, h]) => committed.get(p) === String(h)),
    `fetchOffsets ${groupId} ${what}: ${JSON.stringify(answer[0].partitions)}, expected the high ` +
      `watermarks ${JSON.stringify(Object.fromEntries(high))}`
  )
  ok(`fetchOffsets ${groupId} ${what}: committed = high watermark ${[...high].map(([p, h]) => `${p}=${h}`).join(' ')}`)
}

async function consumeMode(kafka, topic, group) {
  const group2 = `${group}-2`
  const admin = kafka.admin()
  step = 'admin connect'
  await admin.connect()
  const members = []
  try {
    step = 'fetchTopicOffsets'
    const offsets = await admin.fetchTopicOffsets(topic)
    check(
      offsets.length === PARTITIONS && offsets.every(o => o.low === '0'),
      `fetchTopicOffsets ${topic}: ${JSON.stringify(offsets)}, expected ${PARTITIONS} partitions from 0`
    )
    const high = new Map(
      [...offsets].sort((a, b) => a.partition - b.partition).map(o => [o.partition, Number(o.high)])
    )
    const total = [...high.values()].reduce((a, b) => a + b, 0)
    check(total === RECORDS, `fetchTopicOffsets ${topic}: ${total} records, expected ${RECORDS} (run produce first)`)
    const all = [...high.keys()]

    // 1. One member reads everything, commits, leaves.
    const first = new Member(kafka, group, 'consumer 1', false)
    members.push(first)
    await first.start(topic)
    step = `consumer 1 in ${group}: consuming`
    await waitUntil(
      () => (first.checkNoCrash(), first.records.length >= RECORDS),
      CONSUME_MS,
      () => `consumer 1 in ${group}: got ${first.records.length} of ${RECORDS} records (joins ${JSON.stringify(first.joins)})`
    )
    check(
      first.joins.length === 1 && String(first.assigned(topic)) === String(all),
      `consumer 1 in ${group}: joins ${JSON.stringify(first.joins)}, expected one, assigned partitions ${all}`
    )
    step = `consumer 1 in ${group}: commitOffsets`
    await first.consumer.commitOffsets(all.map(p => ({ topic, partition: p, offset: String(high.get(p)) })))
    let described = await describeGroup(admin, group)
    const [only] = described.members
    check(
      described.state === 'Stable' &&
        described.members.length === 1 &&
        only.memberId === first.joins[0].memberId &&
        only.clientId === 'sluice-kafkajs-check',
      `describeGroups ${group} with consumer 1 in it: ${JSON.stringify(described)}`
    )
    const decoded = AssignerProtocol.MemberAssignment.decode(only.memberAssignment)
    check(
      decoded && String([...(decoded.assignment[topic] || [])].sort()) === String(all),
      `describeGroups ${group}: consumer 1's assignment ${JSON.stringify(decoded)}, expected ${topic} ${all}`
    )
    ok(
      `describeGroups ${group}: Stable, protocol ${described.protocol}, 1 member assigned partitions ${all}`
    )
    await first.stop()
    first.checkNoCrash()
    checkAllOnce(topic, first.records, high, `consumer 1 in ${group}`)
    ok(
      `consumer 1 in ${group} (fromBeginning): all ${RECORDS} records exactly once, content, partition ` +
        `and order exact; committed with commitOffsets, disconnected`
    )

    described = await describeGroup(admin, group)
    check(
      described.state === 'Empty' && described.members.length === 0,
      `describeGroups ${group} after consumer 1 left: ${JSON.stringify(described)}`
    )
    ok(`describeGroups ${group} after consumer 1 left: Empty, no members`)
    step = 'listGroups'
    const { groups } = await admin.listGroups()
    check(
      groups.some(g => g.groupId === group && g.protocolType === 'consumer'),
      `listGroups: expected ${group} (protocol type consumer) in ${JSON.stringify(groups)}`
    )
    ok(`listGroups names ${group} (protocol type consumer)`)
    await checkCommitted(admin, group, topic, high, 'after consumer 1')

    // 2. A new member of the same group resumes at the commits.
    const second = new Member(kafka, group, 'consumer 2', true)
    members.push(second)
    await second.start(topic)
    step = `consumer 2 in ${group}: joining`
    await waitUntil(
      () => (second.checkNoCrash(), second.joins.length > 0),
      CONSUME_MS,
      () => `consumer 2 in ${group}: no GROUP_JOIN`
    )
    const fetchesAtJoin = second.fetches
    await waitUntil(
      () => (second.checkNoCrash(), second.fetches > fetchesAtJoin),
      CONSUME_MS,
      () => `consumer 2 in ${group}: no fetch after joining`
    )
    await sleep(QUIET_MS)
    second.checkNoCrash()
    check(
      second.records.length === 0,
      `consumer 2 in ${group} got ${second.records.length} records, expected none (the group had ` +
        `committed the high watermarks); the first: ${JSON.stringify(
          second.records.slice(0, 3).map(r => ({ partition: r.partition, offset: r.message.offset }))
        )}`
    )
    check(
      second.joins.length === 1 && String(second.assigned(topic)) === String(all),
      `consumer 2 in ${group}: joins ${JSON.stringify(second.joins)}, expected one, assigned partitions ${all}`
    )
    await second.stop()
    second.checkNoCrash()
    ok(
      `consumer 2 in ${group} (fromBeginning) resumed at the commits: assigned ${all}, no record in ` +
        `${QUIET_MS} ms after its first fetch (${second.fetches} fetches)`
    )
    await checkCommitted(admin, group, topic, high, 'after consumer 2')

    // 3. Two members of a new group share the partitions.
    const pair = [new Member(kafka, group2, 'member A', true), new Member(kafka, group2, 'member B', true)]
    members.push(...pair)
    await Promise.all(pair.map(m => m.start(topic)))
    step = `${group2}: consuming`
    const received = () => pair.reduce((n, m) => n + m.records.length, 0)
    await waitUntil(
      () => (pair.forEach(m => m.checkNoCrash()), received() >= RECORDS),
      CONSUME_MS,
      () =>
        `${group2}: got ${received()} of ${RECORDS} records ` +
        pair.map(m => `(${m.name}: ${m.records.length}, joins ${JSON.stringify(m.joins)})`).join(' ')
    )
    const shares = pair.map(m => m.assigned(topic))
    const joins = pair.map(m => `${m.name}: ${JSON.stringify(m.joins)}`).join('; ')
    check(
      pair.every(m => m.joins.length === 1),
      `${group2}: expected each member to join once (one generation), got ${joins}`
    )
    check(
      shares.every(s => s.length > 0) &&
        String(shares.flat().sort((a, b) => a - b)) === String(all),
      `${group2}: assignments ${JSON.stringify(shares)} do not split partitions ${all} between ` +
        `the 2 members (${joins})`
    )
    described = await describeGroup(admin, group2)
    check(
      described.state === 'Stable' &&
        described.members.length === 2 &&
        String(described.members.map(m => m.memberId).sort()) ===
          String(pair.map(m => m.joins[0].memberId).sort()),
      `describeGroups ${group2} with both members in it: ${JSON.stringify(described)}`
    )
    ok(`describeGroups ${group2}: Stable, 2 members`)
    // Anything read twice arrives before the members stop.
    await sleep(1000)
    await Promise.all(pair.map(m => m.stop()))
    pair.forEach(m => m.checkNoCrash())
    const readers = checkAllOnce(
      topic,
      pair.flatMap(m => m.records),
      high,
      group2
    )
    for (const [p, reader] of readers) {
      const m = pair.find(m => m.name === reader)
      check(
        high.get(p) === 0 || (m && m.assigned(topic).includes(p)),
        `${group2}: partition ${p} read by ${reader}, assigned ${JSON.stringify(shares)}`
      )
    }
    ok(
      `${group2}: ${pair.map((m, n) => `${m.name} assigned ${shares[n]} read ${m.records.length}`).join(', ')}; ` +
        `all ${RECORDS} records exactly once, content, partition and order exact`
    )
    await checkCommitted(admin, group2, topic, high, 'after both members left (auto-commit)')
  } finally {
    // Stops whatever a failed step left running (disconnect is idempotent).
    await Promise.all(members.map(m => m.consumer.disconnect().catch(() => {})))
    await admin.disconnect()
  }
}

async function deleteMode(kafka, topic) {
  const admin = kafka.admin()
  step = 'admin connect'
  await admin.connect()
  try {
    step = 'deleteTopics'
    await admin.deleteTopics({ topics: [topic], timeout: 30000 })
    ok(`deleteTopics ${topic}`)
    // Deleting is eventually visible in Kafka; allow a short while.
    const deleted = Date.now()
    step = 'listTopics after deleteTopics'
    for (;;) {
      const names = await admin.listTopics()
      if (!names.includes(topic)) break
      check(
        Date.now() - deleted < 10000,
        `listTopics 10 s after deleteTopics still names ${topic}: ${JSON.stringify(names)}`
      )
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    ok(`listTopics no longer names ${topic} (after ${Date.now() - deleted} ms)`)
  } finally {
    await admin.disconnect()
  }
}

// Bound on each wait of the txn mode (a topic usable, a read, a group join).
const TXN_WAIT_MS = 30_000

// Waits for `await condition()` to hold, polling; a Failure with
// `await what()` after `ms`.
async function waitUntilAsync(condition, ms, what) {
  const deadline = Date.now() + ms
  while (!(await condition())) {
    check(Date.now() < deadline, `${await what()} (after ${ms} ms)`)
    await sleep(100)
  }
}

// A transactional producer (idempotent, one request in flight, as kafkajs
// requires), connected.
async function transactionalProducer(kafka, transactionalId, what) {
  const producer = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 })
  step = `${what}: connect`
  await producer.connect()
  return producer
}

// Sends `values` to partition 0 of `topic` in `txn` and checks the ack;
// returns where they went: [{ offset, value }].
async function sendTxn(txn, topic, values, what) {
  step = `${what}: send of ${values}`
  const acks = await txn.send({ topic, messages: values.map(v => ({ partition: 0, value: Buffer.from(v) })) })
  check(
    acks.length === 1 && acks[0].topicName === topic && acks[0].partition === 0 && acks[0].errorCode === 0,
    `${what}: send of ${values}: acks ${JSON.stringify(acks)}`
  )
  const base = Number(acks[0].baseOffset)
  return values.map((value, n) => ({ offset: base + n, value }))
}

const showRecords = records => `[${records.map(r => `${r.offset}:${r.value}`).join(', ')}]`

// Reads `topic` (1 partition) from the beginning with a consumer of
// isolation `isolation` in the new group `groupId` (kafkajs has no
// group-less consumer) until it has `count` records, then 1 s more (any
// extra record arrives then); returns what it read: [{ offset, value }].
async function readTopic(kafka, topic, groupId, isolation, count) {
  const consumer = kafka.consumer({
    groupId,
    readUncommitted: isolation === 'read_uncommitted',
    maxWaitTimeInMs: 500,
  })
  const records = []
  const crashes = []
  consumer.on(consumer.events.CRASH, e => crashes.push(e.payload.error))
  step = `${isolation} consumer in ${groupId}: connect`
  await consumer.connect()
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        records.push({ partition, offset: Number(message.offset), value: message.value.toString() })
      },
    })
    step = `${isolation} consumer in ${groupId}: consuming`
    await waitUntil(
      () => {
        check(crashes.length === 0, `${isolation} consumer in ${groupId} crashed: ${crashes.map(e => e.stack || e)}`)
        return records.length >= count
      },
      TXN_WAIT_MS,
      () => `${isolation} consumer in ${groupId}: read ${showRecords(records)}, expected ${count} records`
    )
    await sleep(1000)
    check(crashes.length === 0, `${isolation} consumer in ${groupId} crashed: ${crashes.map(e => e.stack || e)}`)
  } finally {
    step = `${isolation} consumer in ${groupId}: disconnect`
    await consumer.disconnect()
  }
  check(records.every(r => r.partition === 0), `${isolation} consumer in ${groupId}: ${JSON.stringify(records)}`)
  return records.map(({ offset, value }) => ({ offset, value }))
}

async function txnMode(kafka, topic) {
  const admin = kafka.admin()
  step = 'admin connect'
  await admin.connect()
  const producers = []
  try {
    // 1. The topic.
    step = 'createTopics'
    const created = await admin.createTopics({
      topics: [{ topic, numPartitions: 1, replicationFactor: 1 }],
      waitForLeaders: true,
      timeout: 30000,
    })
    check(created === true, `createTopics ${topic} answered ${created}, expected true`)
    step = 'fetchTopicMetadata'
    let metadata
    await waitUntilAsync(
      async () => {
        metadata = await admin.fetchTopicMetadata({ topics: [topic] }).catch(e => e)
        const p = metadata.topics && metadata.topics[0].partitions
        return p && p.length === 1 && p[0].partitionErrorCode === 0 && p[0].leader >= 0
      },
      TXN_WAIT_MS,
      () => `fetchTopicMetadata ${topic}: no leader: ${metadata && (metadata.stack || JSON.stringify(metadata))}`
    )
    ok(`createTopics ${topic} with 1 partition, led by a broker`)

    // 2. Four transactions: 0 and 2 commit, 1 and 3 abort.
    const transactionalId = `${topic}-tx`
    const first = await transactionalProducer(kafka, transactionalId, 'producer 1')
    producers.push(first)
    const all = []
    const committed = []
    for (let t = 0; t < 4; t++) {
      step = `transaction ${t}: begin`
      const txn = await first.transaction()
      if (t === 0) ok(`producer 1 (transactionalId ${transactionalId}): transaction() initialised it`)
      const sent = await sendTxn(txn, topic, [0, 1, 2].map(r => `t${t}-r${r}`), `transaction ${t}`)
      all.push(...sent)
      const commit = t % 2 === 0
      step = `transaction ${t}: ${commit ? 'commit' : 'abort'}`
      if (commit) {
        await txn.commit()
        committed.push(...sent)
      } else {
        await txn.abort()
      }
      ok(`transaction ${t}: 3 records acked at ${showRecords(sent)}, ${commit ? 'committed' : 'aborted'}`)
    }
    check(all.every((r, n) => n === 0 || r.offset > all[n - 1].offset), `acked offsets not increasing: ${showRecords(all)}`)

    // 3. What each isolation level reads, once the last abort's marker is
    // written (admin fetchTopicOffsets answers the last stable offset).
    let offsets
    step = 'fetchTopicOffsets'
    await waitUntilAsync(
      async () => {
        offsets = await admin.fetchTopicOffsets(topic)
        return offsets.length === 1 && offsets[0].high === '16'
      },
      TXN_WAIT_MS,
      () => `fetchTopicOffsets ${topic}: ${JSON.stringify(offsets)}, expected high 16 (12 records, 4 markers)`
    )
    const show = showRecords
    const rc = await readTopic(kafka, topic, `${topic}-rc`, 'read_committed', committed.length)
    check(show(rc) === show(committed), `read_committed read ${show(rc)}, expected ${show(committed)}`)
    ok(`read_committed (end offset 16): exactly the committed records ${show(rc)}`)
    const ru = await readTopic(kafka, topic, `${topic}-ru`, 'read_uncommitted', all.length)
    check(show(ru) === show(all), `read_uncommitted read ${show(ru)}, expected ${show(all)}`)
    ok(`read_uncommitted: all 12 records`)

    // 4. A second producer with the same transactionalId fences the first.
    const second = await transactionalProducer(kafka, transactionalId, 'producer 2')
    producers.push(second)
    step = 'producer 2: transaction()'
    const txn2 = await second.transaction()
    ok(`producer 2 (transactionalId ${transactionalId}): transaction() initialised it`)
    let fenced = null
    let failedAt = 'transaction()'
    try {
      step = 'producer 1 (fenced): transaction()'
      const zombie = await first.transaction()
      failedAt = 'send'
      await sendTxn(zombie, topic, ['z-r0'], 'producer 1 (fenced)')
      failedAt = 'commit'
      step = 'producer 1 (fenced): commit'
      await zombie.commit()
    } catch (e) {
      fenced = e
    }
    const describe = e => `${e.name} type ${e.type} code ${e.code} retriable ${e.retriable}: ${e.message}` +
      (e.originalError ? ` (original ${describe(e.originalError)})` : '')
    check(fenced !== null, 'the fenced producer\'s transaction() + send + commit succeeded')
    // Kafka answers a client of AddPartitionsToTxn v0-1 (kafkajs's)
    // INVALID_PRODUCER_EPOCH for a fenced producer (PRODUCER_FENCED, 90,
    // is for v2 and later; kafkajs does not know that code).
    check(
      !(fenced instanceof Failure) && fenced.type === 'INVALID_PRODUCER_EPOCH',
      `the fenced producer's ${failedAt} failed with ${describe(fenced)}, expected INVALID_PRODUCER_EPOCH`
    )
    ok(`producer 1 is fenced: its ${failedAt} failed with ${describe(fenced)}`)
    const f = await sendTxn(txn2, topic, ['f-r0'], 'producer 2')
    step = 'producer 2: commit'
    await txn2.commit()
    const afterFence = [...committed, ...f]
    const rc2 = await readTopic(kafka, topic, `${topic}-rc2`, 'read_committed', afterFence.length)
    check(
      show(rc2) === show(afterFence),
      `read_committed after the fencing producer's commit read ${show(rc2)}, expected ${show(afterFence)}`
    )
    ok(`producer 2 committed f-r0; read_committed reads ${show(rc2)}`)
  } finally {
    await Promise.all(producers.map(p => p.disconnect().catch(() => {})))
    await admin.disconnect()
  }
}

async function main() {
  const [bootstrap, mode, topic, ...rest] = process.argv.slice(2)
  // Each mode and the arguments it takes after TOPIC.
  const modes = {
    produce: [produceMode, 0],
    consume: [consumeMode, 1],
    delete: [deleteMode, 0],
    txn: [txnMode, 0],
  }
  if (!modes[mode] || process.argv.length !== 5 + modes[mode][1]) {
    process.stderr.write(
      'usage: node check.js BOOTSTRAP produce|delete|txn TOPIC\n' +
        '       node check.js BOOTSTRAP consume TOPIC GROUP\n'
    )
    process.exit(2)
  }
  setTimeout(() => {
    process.stdout.write(`FAIL kafkajs: watchdog: still running after ${WATCHDOG_MS} ms (${step})\n`)
    process.exit(3)
  }, WATCHDOG_MS)
  const started = Date.now()
  try {
    await modes[mode][0](client(bootstrap), topic, ...rest)
  } catch (e) {
    const detail = e instanceof Failure ? e.message : `${step}: unexpected ${e.stack || e}`
    process.stdout.write(`FAIL kafkajs ${kafkajsVersion} ${mode}: ${detail}\n`)
    process.exit(1)
  }
  process.stdout.write(`PASS kafkajs ${kafkajsVersion} ${mode} in ${Date.now() - started} ms\n`)
  process.exit(0)
}

main()
