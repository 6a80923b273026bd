//! The `sluice` binary: a thin CLI that parses arguments and calls a crate.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde::Serialize;

mod client_cli;
mod dev_cluster;

/// Survives requests that declare absurd collection sizes (see the module).
#[global_allocator]
static ALLOCATOR: sluice_core::alloc::GuardedAllocator = sluice_core::alloc::GuardedAllocator;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A Kafka-API-compatible, thread-per-core streaming broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Flags shared by the commands that read the node configuration. Each is
/// also settable in the TOML file and as a `SLUICE_*` variable; flags win.
#[derive(clap::Args, Serialize, Default)]
struct NodeFlags {
    /// A TOML configuration file.
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Where partitions and metadata live [default: ./sluice-data].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    /// Address the Kafka listener binds [default: 127.0.0.1:9092].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    kafka_addr: Option<String>,
    /// HOST:PORT clients are told to connect to [default: --kafka-addr].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    advertised_kafka_addr: Option<String>,
    /// Address of the admin HTTP endpoint [default: 127.0.0.1:9644].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_addr: Option<String>,
    /// Shards (pinned executors, one per core) [default: all cores].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    cores: Option<usize>,
    /// This broker's id (Kafka's node.id) [default: 0].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    node_id: Option<i32>,
    /// HOST:PORT of the internal listener [default: this node's entry in
    /// --controller-voters].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    rpc_addr: Option<String>,
    /// The controller quorum: ID@HOST:PORT,ID@HOST:PORT,... [default: this
    /// node alone].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    controller_voters: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker on this machine.
    Serve(NodeFlags),
    /// Print the effective configuration (defaults < --config file <
    /// SLUICE_* environment < flags) as TOML.
    Config(NodeFlags),
    /// A Kafka load generator for any Kafka-compatible broker: produce,
    /// consume, end to end; plots and comparisons of result files.
    #[command(subcommand)]
    Bench(Box<sluice_bench::cli::BenchCommand>),
    /// Consumer groups of any Kafka-compatible broker: list, describe
    /// (members, committed offsets, lag), delete, reset offsets.
    Group(GroupArgs),
    /// Transactions of any Kafka-compatible broker: list, describe a
    /// transactional id, describe a partition's producers (as Kafka's
    /// kafka-transactions.sh).
    Txn(TxnArgs),
    /// A Kafka-compatible cluster: `info` (brokers, controller quorum and
    /// its lag, partitions per broker).
    Cluster(ClusterArgs),
    /// Topics of any Kafka-compatible broker: create, list, describe,
    /// delete, alter-config, add-partitions.
    Topic(client_cli::TopicArgs),
    /// Lines of standard input to a topic of any Kafka-compatible broker.
    Produce(client_cli::ProduceArgs),
    /// A topic's records to standard output, from any Kafka-compatible
    /// broker: from the beginning, the end, an offset or a time; as a
    /// group member; as templates or JSON lines.
    Consume(client_cli::ConsumeArgs),
    /// Local development helpers.
    #[command(subcommand)]
    Dev(DevCommand),
    /// Measure the disk under the data directory (O_DIRECT reads and writes
    /// through io_uring, as the log does) and write the io-properties file
    /// the broker reads at start: the write and read sizes chosen from it
    /// (`[chosen]`) and what was measured (`[measured]`).
    Iotune(IotuneArgs),
}

#[derive(clap::Args)]
struct IotuneArgs {
    #[command(flatten)]
    node: NodeFlags,
    /// Where to write the file [default: the configured
    /// io_properties_file, else io-properties.toml in the data directory].
    #[arg(long)]
    out: Option<PathBuf>,
    /// How long each measured point runs, in milliseconds.
    #[arg(long, default_value_t = 500)]
    point_ms: u64,
    /// How many times the one-in-flight write and read sweeps run (each
    /// size keeps its best pass).
    #[arg(long, default_value_t = 3)]
    passes: u32,
    /// The most MiB one point writes, and the size of the file reads are
    /// measured on (at least 16).
    #[arg(long, default_value_t = 1024)]
    max_file_mib: u64,
}

#[derive(clap::Args)]
struct ClusterArgs {
    /// A broker to ask, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092", global = true)]
    bootstrap: String,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Brokers (address, rack, live or not, partitions led and held), the
    /// controller quorum (leader, epoch, each voter's lag) and partition
    /// counts.
    Info,
}

#[derive(Subcommand)]
enum DevCommand {
    /// Starts a local cluster on loopback (node ids 1..=N, all controller
    /// voters, Kafka ports from --base-port) and stops it cleanly on Ctrl-C.
    Cluster {
        /// How many brokers.
        #[arg(long, default_value_t = 3)]
        brokers: u16,
        /// Where each broker keeps its data (`DIR/node-ID`) and log.
        #[arg(long, default_value = "./sluice-dev-cluster")]
        data_dir: PathBuf,
        /// The first broker's Kafka port; internal listeners are 100 above,
        /// admin endpoints 200 above.
        #[arg(long, default_value_t = 9092)]
        base_port: u16,
        /// Shards (cores) each broker runs.
        #[arg(long, default_value_t = 1)]
        cores_per_broker: usize,
    },
}

#[derive(clap::Args)]
struct GroupArgs {
    /// A broker to ask, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092", global = true)]
    bootstrap: String,
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Subcommand)]
enum GroupCommand {
    /// Every group, with its state and protocol type.
    List,
    /// A group's state, members, and per partition its committed offset,
    /// log end offset and lag.
    Describe { group: String },
    /// Delete an empty group and its committed offsets.
    Delete { group: String },
    /// Move an inactive group's committed offsets (prints the plan; commits
    /// it with --execute).
    ResetOffsets(ResetArgs),
}

#[derive(clap::Args)]
struct TxnArgs {
    /// A broker to ask, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092", global = true)]
    bootstrap: String,
    #[command(subcommand)]
    command: TxnCommand,
}

#[derive(Subcommand)]
enum TxnCommand {
    /// Every transactional id, with its coordinator, producer id and state.
    List,
    /// A transactional id's state, producer, timeout, start time and the
    /// partitions of its transaction.
    Describe { transactional_id: String },
    /// The producers of one partition, with the first offset of each one's
    /// open transaction.
    DescribeProducers {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
    },
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true)))]
struct ResetArgs {
    group: String,
    /// Topics to reset (all their partitions); default: every topic the
    /// group committed offsets for.
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// To each partition's log start offset.
    #[arg(long, group = "target")]
    to_earliest: bool,
    /// To each partition's log end offset.
    #[arg(long, group = "target")]
    to_latest: bool,
    /// To this offset (clamped to each partition's range).
    #[arg(long, group = "target")]
    to_offset: Option<i64>,
    /// To the first offset at or after this time (RFC 3339, UTC unless a
    /// zone is given, or milliseconds since the epoch).
    #[arg(long, group = "target")]
    to_datetime: Option<String>,
    /// Commit the new offsets (without it, only the plan is printed).
    #[arg(long)]
    execute: bool,
}

fn load(flags: &NodeFlags) -> anyhow::Result<sluice_core::config::NodeConfig> {
    sluice_core::config::load(flags.config.as_deref(), Some(flags)).context("loading configuration")
}

fn main() -> anyhow::Result<()> {
    sluice_core::alloc::reuse_freed_blocks();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Config(flags) => {
            let config = load(&flags)?;
            print!(
                "{}",
                toml::to_string(&config).context("printing configuration")?
            );
        }
        Command::Serve(flags) => serve(load(&flags)?)?,
        Command::Iotune(args) => iotune(args)?,
        Command::Group(args) => print!("{}", group(args)?),
        Command::Txn(args) => print!("{}", txn(args)?),
        Command::Bench(command) => print!("{}", sluice_bench::cli::main(*command)?),
        Command::Topic(args) => print!("{}", client_cli::topic(args)?),
        Command::Produce(args) => client_cli::produce(args)?,
        Command::Consume(args) => client_cli::consume(args)?,
        Command::Cluster(args) => match args.command {
            ClusterCommand::Info => print!("{}", sluice_client::cluster::info(&args.bootstrap)?),
        },
        Command::Dev(DevCommand::Cluster {
            brokers,
            data_dir,
            base_port,
            cores_per_broker,
        }) => dev_cluster::DevCluster {
            brokers,
            data_dir,
            base_port,
            cores_per_broker,
        }
        .run()?,
    }
    Ok(())
}

fn txn(args: TxnArgs) -> anyhow::Result<String> {
    use sluice_client::txns;
    let bootstrap = &args.bootstrap;
    match args.command {
        TxnCommand::List => txns::list(bootstrap),
        TxnCommand::Describe { transactional_id } => txns::describe(bootstrap, &transactional_id),
        TxnCommand::DescribeProducers { topic, partition } => {
            txns::describe_producers(bootstrap, &topic, partition)
        }
    }
}

fn group(args: GroupArgs) -> anyhow::Result<String> {
    use sluice_client::groups::{self as group, ResetTarget};
    let bootstrap = &args.bootstrap;
    match args.command {
        GroupCommand::List => group::list(bootstrap),
        GroupCommand::Describe { group } => group::describe(bootstrap, &group),
        GroupCommand::Delete { group } => group::delete(bootstrap, &group),
        GroupCommand::ResetOffsets(r) => {
            let target = match (r.to_earliest, r.to_latest, r.to_offset, &r.to_datetime) {
                (true, ..) => ResetTarget::Earliest,
                (_, true, ..) => ResetTarget::Latest,
                (_, _, Some(offset), _) => ResetTarget::Offset(offset),
                (.., Some(time)) => ResetTarget::datetime(time)?,
                _ => anyhow::bail!(
                    "name a target: --to-earliest, --to-latest, --to-offset or --to-datetime"
                ),
            };
            group::reset_offsets(bootstrap, &r.group, &r.topics, &target, r.execute)
        }
    }
}

/// How long a start waits for its ports to be released by a process that
/// held them (one just killed) before it gives up.
const PORT_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// `sluice iotune`: measures, then writes the file whole (a temporary file
/// renamed over it) and prints it.
fn iotune(args: IotuneArgs) -> anyhow::Result<()> {
    let config = sluice_core::config::load_without_io_properties(
        args.node.config.as_deref(),
        Some(&args.node),
    )
    .context("loading configuration")?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let out = args.out.or(config.io_properties_file).unwrap_or_else(|| {
        config
            .data_dir
            .join(sluice_core::config::IO_PROPERTIES_FILE)
    });
    let options = sluice_tuning::Options {
        dir: config.data_dir.clone(),
        point: std::time::Duration::from_millis(args.point_ms),
        passes: args.passes,
        max_file_bytes: args.max_file_mib.saturating_mul(1 << 20),
    };
    let properties = sluice_tuning::run(&options)
        .with_context(|| format!("measuring the disk under {}", config.data_dir.display()))?;
    let text = properties.to_toml().context("writing io-properties")?;
    let tmp = out.with_extension("toml.tmp");
    std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &out).with_context(|| format!("renaming to {}", out.display()))?;
    tracing::info!(path = %out.display(), "wrote io-properties");
    print!("{text}");
    Ok(())
}

fn serve(mut config: sluice_core::config::NodeConfig) -> anyhow::Result<()> {
    if let Some(path) = sluice_core::config::io_properties_path(&config) {
        tracing::info!(
            path = %path.display(),
            write_buffer_bytes = config.log.write_buffer_bytes,
            read_ahead_read_bytes = config.shard.read_ahead_read_bytes,
            "disk settings from sluice iotune's io-properties (other settings win over them)"
        );
    }
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    let shards = if config.cores == 0 {
        available
    } else {
        config.cores
    };
    config.cores = shards;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    ensure_cluster_id(&config.data_dir, config.controller_voters.as_deref())?;
    // Every shard binds with SO_REUSEPORT, which would also let a second
    // broker share the ports; a plain bind first fails if anyone holds them.
    // A process that was just killed may hold them a moment longer (the
    // kernel closes an io_uring's sockets after the process is gone), so a
    // supervisor's immediate restart retries for a few seconds.
    for (what, addr) in [("Kafka", &config.kafka_addr), ("admin", &config.admin_addr)] {
        let deadline = std::time::Instant::now() + PORT_RELEASE_WAIT;
        loop {
            match std::net::TcpListener::bind(addr.as_str()) {
                Ok(_) => break,
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("the {what} address {addr} is not available")))
                }
            }
        }
    }
    let shutdown = sluice_shard::ShutdownFlag::default();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        signal_hook::flag::register(signal, flag.clone()).context("installing a signal handler")?;
        let shutdown = shutdown.clone();
        std::thread::spawn(move || loop {
            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                tracing::info!("signal received; stopping");
                shutdown.request();
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        });
    }
    println!(
        "sluice {} serving: cores {}, data dir {}, kafka {} (advertised {}), admin {}, flush {}",
        env!("CARGO_PKG_VERSION"),
        shards,
        config.data_dir.display(),
        config.kafka_addr,
        config
            .advertised_kafka_addr
            .as_deref()
            .unwrap_or(&config.kafka_addr),
        config.admin_addr,
        config.log.flush,
    );
    let limits = connection_limits(&config.kafka);
    raise_locked_memory_limit(&config.shard);
    let serve: sluice_shard::ServeFn =
        Arc::new(move |shard, stop| Box::pin(sluice_net::serve(shard, stop, limits.clone())));
    sluice_shard::run(config, shards, serve, shutdown).map_err(|e| anyhow::anyhow!(e))?;
    println!("sluice stopped");
    Ok(())
}

/// The node's connection limits: the configured ones, but never above what
/// the open-file limit allows (raised first from its soft to its hard
/// value, as servers do, since every connection is a descriptor).
fn connection_limits(
    kafka: &sluice_core::config::KafkaConfig,
) -> Arc<sluice_net::ConnectionLimits> {
    let open_files = raise_open_files_limit();
    let ceiling = sluice_net::ConnectionLimits::ceiling_for_open_files(open_files);
    let max_total = kafka.max_connections.min(ceiling);
    if max_total < kafka.max_connections && kafka.max_connections != i32::MAX as u64 {
        tracing::warn!(
            configured = kafka.max_connections,
            open_files,
            max_total,
            "max.connections lowered to what the open-file limit allows"
        );
    }
    sluice_net::ConnectionLimits::new(max_total, kafka.max_connections_per_ip)
}

/// Raises RLIMIT_NOFILE's soft limit to its hard limit; returns the soft
/// limit in force afterwards.
fn raise_open_files_limit() -> u64 {
    raise_soft_limit(libc::RLIMIT_NOFILE).unwrap_or(1024)
}

/// Raises RLIMIT_MEMLOCK's soft limit to its hard limit, so each shard's
/// io-memory (`shard.io_memory_bytes`) can be registered with io_uring
/// where the hard limit allows; says so when it cannot be (the memory is
/// then used without registration, unless the process has CAP_IPC_LOCK).
fn raise_locked_memory_limit(shard: &sluice_core::config::ShardConfig) {
    let Some(limit) = raise_soft_limit(libc::RLIMIT_MEMLOCK) else {
        return;
    };
    if limit != libc::RLIM_INFINITY && shard.io_memory_bytes > limit {
        tracing::info!(
            io_memory_bytes = shard.io_memory_bytes,
            memlock_limit_bytes = limit,
            "shard.io_memory_bytes is above the locked-memory limit (ulimit -l): \
             without CAP_IPC_LOCK its buffers are not registered with io_uring"
        );
    }
}

/// Raises `resource`'s soft limit to its hard limit; returns the soft
/// limit in force afterwards, or `None` when it cannot be read.
fn raise_soft_limit(resource: libc::__rlimit_resource_t) -> Option<u64> {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(resource, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(resource, &raised) == 0 {
                limit = raised;
            }
        }
        Some(limit.rlim_cur)
    }
}

/// Makes the cluster id (a 22-character base64 UUID, as Kafka's) on first
/// start; later starts keep it. Brokers of one controller quorum derive it
/// from the voter list, so every broker reports the same id without a
/// format step; a lone node draws a random one.
fn ensure_cluster_id(data_dir: &std::path::Path, voters: Option<&str>) -> anyhow::Result<()> {
    let path = data_dir.join(sluice_net::kafka::context::CLUSTER_ID_FILE);
    if path.exists() {
        return Ok(());
    }
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = match voters {
        Some(list) => {
            let mut entries: Vec<&str> = list.split(',').map(str::trim).collect();
            entries.sort_unstable();
            // Two FNV-1a passes with different offsets: 128 stable bits.
            let fnv = |offset: u64| {
                entries.join(",").bytes().fold(offset, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                })
            };
            (u128::from(fnv(0xcbf2_9ce4_8422_2325)) << 64) | u128::from(fnv(0x6c62_272e_07bb_0142))
        }
        None => uuid::Uuid::new_v4().as_u128(),
    };
    let mut id = String::with_capacity(22);
    for _ in 0..22 {
        id.push(ALPHABET[(bits & 63) as usize] as char);
        bits >>= 6;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &id)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}
