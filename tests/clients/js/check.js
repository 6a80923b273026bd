// Drives a sluice broker with kafkajs. After `npm ci` in this directory:
//
//   node check.js BOOTSTRAP produce TOPIC
//   node check.js BOOTSTRAP consume TOPIC GROUP
//   node check.js BOOTSTRAP delete TOPIC
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

const { Kafka, Partitioners, logLevel } = require('kafkajs')
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

async function main() {
  const [bootstrap, mode, topic] = process.argv.slice(2)
  const modes = { produce: produceMode, delete: deleteMode }
  if (process.argv.length !== 5 || !modes[mode]) {
    process.stderr.write('usage: node check.js BOOTSTRAP produce|delete TOPIC\n')
    process.exit(2)
  }
  setTimeout(() => {
    process.stdout.write(`FAIL kafkajs: watchdog: still running after ${WATCHDOG_MS} ms\n`)
    process.exit(3)
  }, WATCHDOG_MS)
  const started = Date.now()
  try {
    await modes[mode](client(bootstrap), topic)
  } catch (e) {
    const detail = e instanceof Failure ? e.message : `${step}: unexpected ${e.stack || e}`
    process.stdout.write(`FAIL kafkajs ${kafkajsVersion} ${mode}: ${detail}\n`)
    process.exit(1)
  }
  process.stdout.write(`PASS kafkajs ${kafkajsVersion} ${mode} in ${Date.now() - started} ms\n`)
  process.exit(0)
}

main()
