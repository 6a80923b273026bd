//! `sluice dev cluster --brokers N`: a local cluster on loopback in one
//! command, for trying a cluster out and for tests.
//!
//! Owns: the child `sluice serve` processes it starts (node ids 1..=N, all
//! voters of one controller quorum; Kafka ports `--base-port`.., internal
//! listeners 100 above, admin endpoints 200 above; data in `DIR/node-ID`,
//! each broker's output in `DIR/node-ID/broker.log`), and stopping them.
//!
//! Invariants: every child it starts is stopped before it returns: on
//! Ctrl-C or SIGTERM each gets SIGTERM (a controlled shutdown) and, after
//! a grace period, SIGKILL; if one child exits on its own the others are
//! stopped the same way and the command fails. If this process dies
//! without stopping them (SIGKILL), the kernel sends each child SIGTERM
//! (PR_SET_PDEATHSIG), so none outlives it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long children get to stop after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// Internal listeners sit this far above the Kafka ports.
const RPC_PORT_OFFSET: u16 = 100;
/// Admin endpoints sit this far above the Kafka ports.
const ADMIN_PORT_OFFSET: u16 = 200;

/// What `sluice dev cluster` was asked for.
pub struct DevCluster {
    pub brokers: u16,
    pub data_dir: PathBuf,
    pub base_port: u16,
    pub cores_per_broker: usize,
}

struct Node {
    id: u16,
    kafka: String,
    child: Child,
}

impl DevCluster {
    /// Starts the brokers and runs until a signal or a broker's exit.
    pub fn run(&self) -> anyhow::Result<()> {
        if !(1..=9).contains(&self.brokers) {
            bail!("--brokers must be between 1 and 9");
        }
        let last =
            u32::from(self.base_port) + u32::from(self.brokers) + u32::from(ADMIN_PORT_OFFSET);
        if last > u32::from(u16::MAX) {
            bail!(
                "--base-port {} leaves no room for the ports",
                self.base_port
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, stop.clone())
                .context("installing a signal handler")?;
        }
        let voters: Vec<String> = (1..=self.brokers)
            .map(|id| format!("{id}@127.0.0.1:{}", self.rpc_port(id)))
            .collect();
        let voters = voters.join(",");
        let mut nodes = Vec::new();
        for id in 1..=self.brokers {
            match self.spawn(id, &voters) {
                Ok(node) => nodes.push(node),
                Err(e) => {
                    stop_all(&mut nodes);
                    return Err(e);
                }
            }
        }
        let bootstrap: Vec<&str> = nodes.iter().map(|n| n.kafka.as_str()).collect();
        println!(
            "sluice dev cluster: {} brokers, data in {}; bootstrap.servers={}; Ctrl-C stops them",
            self.brokers,
            self.data_dir.display(),
            bootstrap.join(",")
        );
        let mut failed = None;
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
            for node in &mut nodes {
                if let Ok(Some(status)) = node.child.try_wait() {
                    failed = Some(format!(
                        "broker {} exited with {status} (see {})",
                        node.id,
                        self.log_path(node.id).display()
                    ));
                }
            }
            if failed.is_some() {
                break;
            }
        }
        stop_all(&mut nodes);
        match failed {
            Some(why) => bail!(why),
            None => {
                println!("sluice dev cluster: stopped");
                Ok(())
            }
        }
    }

    fn rpc_port(&self, id: u16) -> u16 {
        self.base_port + RPC_PORT_OFFSET + id - 1
    }

    fn node_dir(&self, id: u16) -> PathBuf {
        self.data_dir.join(format!("node-{id}"))
    }

    fn log_path(&self, id: u16) -> PathBuf {
        self.node_dir(id).join("broker.log")
    }

    fn spawn(&self, id: u16, voters: &str) -> anyhow::Result<Node> {
        let dir = self.node_dir(id);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = open_log(&self.log_path(id))?;
        let kafka = format!("127.0.0.1:{}", self.base_port + id - 1);
        let exe = std::env::current_exe().context("finding the sluice binary")?;
        let mut command = Command::new(exe);
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches
        // only the child's own settings.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let child = command
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--kafka-addr", &kafka])
            .args([
                "--admin-addr",
                &format!("127.0.0.1:{}", self.base_port + ADMIN_PORT_OFFSET + id - 1),
            ])
            .args(["--cores", &self.cores_per_broker.to_string()])
            .args(["--node-id", &id.to_string()])
            .args(["--rpc-addr", &format!("127.0.0.1:{}", self.rpc_port(id))])
            .args(["--controller-voters", voters])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting broker {id}"))?;
        Ok(Node { id, kafka, child })
    }
}

fn open_log(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// SIGTERM to every running child, then SIGKILL to those still running
/// after [`STOP_GRACE`]; reaps them all.
fn stop_all(nodes: &mut [Node]) {
    for node in nodes.iter_mut() {
        if let Ok(None) = node.child.try_wait() {
            if let Ok(pid) = libc::pid_t::try_from(node.child.id()) {
                // SAFETY: kill(2) on a child this process spawned and has not
                // reaped (try_wait just saw it running), so the pid is ours.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    for node in nodes.iter_mut() {
        loop {
            match node.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = node.child.kill();
                    let _ = node.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}
