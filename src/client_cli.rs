//! The arguments of `sluice topic`, `sluice produce` and `sluice consume`
//! (clients of any Kafka-compatible broker) and the calls they make into
//! `sluice-client`.

use anyhow::{anyhow, bail};
use clap::{Subcommand, ValueEnum};
use sluice_client::consume::{ConsumeOptions, RecordFormat, StartAt, Template};
use sluice_client::produce::ProduceOptions;
use sluice_client::topics::{self, key_values, Format};

/// `--format`: a readable table, or JSON for scripts.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

impl From<OutputFormat> for Format {
    fn from(f: OutputFormat) -> Format {
        match f {
            OutputFormat::Table => Format::Table,
            OutputFormat::Json => Format::Json,
        }
    }
}

#[derive(clap::Args)]
pub struct TopicArgs {
    /// A broker to ask, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092", global = true)]
    bootstrap: String,
    /// A table for people, or JSON for scripts.
    #[arg(long, value_enum, default_value = "table", global = true)]
    format: OutputFormat,
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create {
        topic: String,
        /// Partitions [default: the broker's num.partitions].
        #[arg(short, long, default_value_t = -1, allow_hyphen_values = true)]
        partitions: i32,
        /// Replicas of each partition [default: the broker's
        /// default.replication.factor].
        #[arg(short, long, default_value_t = -1, allow_hyphen_values = true)]
        replication_factor: i16,
        /// A topic config, key=value (repeat for more).
        #[arg(short, long = "config")]
        configs: Vec<String>,
    },
    /// Every topic with its partition count and replication factor.
    List {
        /// Internal topics too (__consumer_offsets).
        #[arg(long)]
        internal: bool,
    },
    /// A topic's id, configs set on it, and partitions (leader, replicas,
    /// in-sync replicas).
    Describe { topic: String },
    /// Delete a topic and its records.
    Delete { topic: String },
    /// Set (--set key=value) or remove (--delete key) topic configs.
    AlterConfig {
        topic: String,
        #[arg(long = "set")]
        set: Vec<String>,
        #[arg(long = "delete")]
        delete: Vec<String>,
    },
    /// Grow a topic to --total partitions.
    AddPartitions {
        topic: String,
        #[arg(long)]
        total: i32,
    },
}

/// Runs a `sluice topic` command; answers what to print.
pub fn topic(args: TopicArgs) -> anyhow::Result<String> {
    let (bootstrap, format) = (&args.bootstrap, Format::from(args.format));
    match args.command {
        TopicCommand::Create {
            topic,
            partitions,
            replication_factor,
            configs,
        } => topics::create(
            bootstrap,
            &topic,
            partitions,
            replication_factor,
            &key_values(&configs)?,
            format,
        ),
        TopicCommand::List { internal } => topics::list(bootstrap, internal, format),
        TopicCommand::Describe { topic } => topics::describe(bootstrap, &topic, format),
        TopicCommand::Delete { topic } => topics::delete(bootstrap, &topic),
        TopicCommand::AlterConfig { topic, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                bail!("nothing to change: give --set key=value or --delete key");
            }
            topics::alter_config(bootstrap, &topic, &key_values(&set)?, &delete)
        }
        TopicCommand::AddPartitions { topic, total } => {
            topics::add_partitions(bootstrap, &topic, total)
        }
    }
}

#[derive(clap::Args)]
pub struct ProduceArgs {
    /// The topic to produce to.
    topic: String,
    /// A broker to ask, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Every record to this partition (default: by key, as the Java
    /// client partitions; round robin without keys).
    #[arg(short, long)]
    partition: Option<i32>,
    /// Each line is KEY<SEP>VALUE.
    #[arg(short = 'K', long)]
    key_separator: Option<String>,
    /// Each line starts with k=v,k=v<SEP>: the record's headers.
    #[arg(long)]
    header_separator: Option<String>,
    /// A header every record gets, key=value (repeat for more).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// 0, 1 or -1 (all in-sync replicas).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    acks: i16,
    /// A summary table, or JSON lines (one per record: partition, offset).
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
}

/// Runs `sluice produce` on standard input, printing as it goes.
pub fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    if ![-1, 0, 1].contains(&args.acks) {
        bail!("--acks is 0, 1 or -1");
    }
    let options = ProduceOptions {
        topic: args.topic,
        partition: args.partition,
        key_separator: args.key_separator,
        header_separator: args.header_separator,
        headers: key_values(&args.headers)?,
        acks: args.acks,
        format: args.format.into(),
    };
    let stdout = std::io::stdout();
    sluice_client::produce::run(
        &args.bootstrap,
        &options,
        std::io::stdin().lock(),
        &mut stdout.lock(),
    )
}

#[derive(clap::Args)]
pub struct ConsumeArgs {
    /// The topic to read.
    topic: String,
    /// A broker to ask, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Only these partitions (not with --group).
    #[arg(short, long = "partition")]
    partitions: Vec<i32>,
    /// Where to start: beginning, end, an offset (a number), or a time
    /// (@ and RFC 3339 or milliseconds since the epoch:
    /// @2026-12-01T10:00:00Z). With --group, only for partitions the
    /// group has no committed offset for.
    #[arg(long, default_value = "end")]
    from: String,
    /// Read as a member of this consumer group (KIP-848), committing
    /// what was printed.
    #[arg(short, long)]
    group: Option<String>,
    /// Stop after this many records.
    #[arg(short = 'c', long)]
    count: Option<u64>,
    /// Stop at the end of every partition read (its end when first read).
    #[arg(short = 'e', long)]
    exit_at_end: bool,
    /// `json` (one object per line), or a template: %t topic, %p
    /// partition, %o offset, %k key, %v value, %T timestamp, %h headers
    /// [default: %v\n].
    #[arg(short, long, default_value = "%v\\n")]
    format: String,
}

fn start_at(from: &str) -> anyhow::Result<StartAt> {
    Ok(match from {
        "beginning" | "earliest" => StartAt::Beginning,
        "end" | "latest" => StartAt::End,
        at if at.starts_with('@') => {
            let text = &at[1..];
            let ms = match text.parse::<i64>() {
                Ok(ms) => ms,
                Err(_) => match sluice_client::groups::ResetTarget::datetime(text)? {
                    sluice_client::groups::ResetTarget::Timestamp(ms) => ms,
                    _ => bail!("{at:?} is not a time"),
                },
            };
            StartAt::Time(ms)
        }
        offset => {
            StartAt::Offset(offset.parse().map_err(|_| {
                anyhow!("--from {offset:?}: give beginning, end, an offset or @TIME")
            })?)
        }
    })
}

/// Runs `sluice consume`, printing to standard output as it reads.
pub fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    if args.group.is_some() && !args.partitions.is_empty() {
        bail!("--partition and --group do not go together: the group assigns partitions");
    }
    let options = ConsumeOptions {
        topic: args.topic,
        partitions: args.partitions,
        start: start_at(&args.from)?,
        group: args.group,
        count: args.count,
        exit_at_end: args.exit_at_end,
        format: if args.format == "json" {
            RecordFormat::Json
        } else {
            RecordFormat::Template(Template::parse(&args.format))
        },
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match sluice_client::consume::run(&args.bootstrap, &options, &mut out) {
        Ok(_) => Ok(()),
        // The reader went away (`| head`): done, as kcat is.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}
