//! The harness shared by the integration tests: a real `sluice` broker on
//! its own loopback port and data directory, external clients run with a
//! deadline, and a hand-written Kafka wire codec ([`wire`]) for the requests
//! no client library will send (bad frames, bad CRCs).
//!
//! Every process started here is owned by a guard that kills it (SIGKILL)
//! and reaps it by pid when dropped, so a failing assertion never leaves a
//! broker or a client behind. Every wait polls a condition until a
//! deadline; nothing sleeps to synchronize.
//!
//! Each test file compiles this module on its own and uses part of it.
#![allow(dead_code)]

pub mod cluster;
pub mod kafka;
pub mod netns;
pub mod programs;
pub mod wire;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a broker gets to come up (debug build, cold disk).
pub const BROKER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a broker gets to stop after SIGTERM.
pub const BROKER_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one client command (kcat, a Python snippet) may run.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a SIGKILLed broker's ports may stay taken after it is reaped.
pub const PORT_RELEASE_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval between two checks of a polled condition.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A port on 127.0.0.1 that was free a moment ago (see [`free_ports`]).
/// Another process could take it before the broker binds it; the broker
/// then fails to start and [`Broker::start`] tries another port.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// The lowest port tests pick their servers' ports from.
const LOWEST_TEST_PORT: u16 = 10_000;

/// `count` distinct ports on 127.0.0.1 that were free a moment ago. They
/// come from below the kernel's ephemeral range (the ports outgoing
/// connections are given), so that no client's connection can take a
/// stopped broker's port before the broker restarts on it; each is tried
/// by binding it, in turn from a start that differs per process. Every
/// listener is held until all are bound, so no two are the same port.
/// Where the ephemeral range leaves too little room below it, the kernel
/// picks (port 0).
pub fn free_ports(count: usize) -> Vec<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(ephemeral_low().saturating_sub(LOWEST_TEST_PORT));
    let mut listeners = Vec::with_capacity(count);
    if span < 1_000 {
        for _ in 0..count {
            listeners.push(
                TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral loopback port"),
            );
        }
    } else {
        // A start of its own per process (pid), then one port after another.
        let _ = NEXT.compare_exchange(
            u32::MAX,
            std::process::id().wrapping_mul(7_919) % span,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        let mut tried = 0;
        while listeners.len() < count {
            assert!(tried < span, "no free port below the ephemeral range");
            tried += 1;
            let offset = NEXT.fetch_add(1, Ordering::Relaxed) % span;
            let port = LOWEST_TEST_PORT + offset as u16;
            if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
                listeners.push(l);
            }
        }
    }
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .expect("a bound socket has an address")
                .port()
        })
        .collect()
}

/// The first port of the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`), or its default.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A child process that is killed (SIGKILL) and reaped by pid when dropped.
pub struct ProcessGuard {
    child: Option<Child>,
    name: String,
}

impl ProcessGuard {
    pub fn new(child: Child, name: impl Into<String>) -> ProcessGuard {
        ProcessGuard {
            child: Some(child),
            name: name.into(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("the process is owned until reaped")
            .id()
    }

    /// The exit status, if the process has exited (reaps it).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let child = self
            .child
            .as_mut()
            .expect("the process is owned until reaped");
        child
            .try_wait()
            .unwrap_or_else(|e| panic!("waiting for {}: {e}", self.name))
    }

    /// Waits for the process to exit; `None` when it is still running at the
    /// deadline (it is left running).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Sends `signal` to the process by pid, unless it has exited already
    /// (then returns false: once reaped, its pid may belong to another
    /// process).
    pub fn signal(&mut self, signal: i32) -> bool {
        if self.try_wait().is_some() {
            return false;
        }
        let pid = self.pid() as libc::pid_t;
        // SAFETY: kill(2) on the pid of a child this guard owns and has just
        // seen running: a child that exits after the check stays a zombie
        // until reaped, so the pid cannot have been reused.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}) on {}: {}",
            self.name,
            std::io::Error::last_os_error()
        );
        true
    }

    /// SIGKILL and reap; returns the exit status.
    pub fn kill(&mut self) -> ExitStatus {
        let mut child = self
            .child
            .take()
            .expect("the process is owned until reaped");
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        let _ = child.kill();
        child
            .wait()
            .unwrap_or_else(|e| panic!("reaping {}: {e}", self.name))
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `sluice serve` process on its own port and data directory.
pub struct Broker {
    process: Option<ProcessGuard>,
    port: u16,
    admin_port: u16,
    /// The port Metadata names instead of `port` (`--advertised-kafka-addr
    /// 127.0.0.1:PORT`), for a proxy in front of the broker.
    advertised_port: Option<u16>,
    /// Extra environment for the broker (`SLUICE_*` configuration).
    env: Vec<(String, String)>,
    /// Holds the data directory and the broker's output; removed on drop.
    dir: tempfile::TempDir,
    /// Lengths of the stdout and stderr files when the current process was
    /// started: its own output is what follows.
    output_offsets: (u64, u64),
    /// A data directory of the test's choosing (a filesystem it mounted)
    /// instead of one under `dir`.
    data_dir: Option<PathBuf>,
    /// Its node id (`SLUICE_NODE_ID`), which Metadata names.
    node_id: i32,
    /// `--cores`.
    cores: usize,
    /// The IPv4 address its listeners bind (loopback unless it runs in a
    /// network namespace).
    host: String,
    /// The network namespace it runs in (`ip netns exec`), if any.
    netns: Option<String>,
}

impl Broker {
    /// Starts a broker with `--cores 2` on a fresh data directory and waits
    /// until it answers Metadata.
    pub fn start() -> Broker {
        Broker::start_with(None, &[])
    }

    /// [`start`](Self::start) with extra `SLUICE_*` environment variables
    /// (configuration such as `SLUICE_LOG__RETENTION_BYTES`), kept across
    /// restarts.
    pub fn start_with_env(env: &[(&str, &str)]) -> Broker {
        Broker::start_with(None, env)
    }

    /// [`start`](Self::start), but the broker tells clients to connect to
    /// `127.0.0.1:advertised_port` (a proxy in front of it) instead of its
    /// own port. Restarts keep advertising that port.
    pub fn start_advertising(advertised_port: u16) -> Broker {
        Broker::start_with(Some(advertised_port), &[])
    }

    /// [`start_with_env`](Self::start_with_env) with its data in `data_dir`
    /// (which the caller owns and removes).
    pub fn start_on(data_dir: PathBuf, env: &[(&str, &str)]) -> Broker {
        Broker::start_full(None, env, Some(data_dir))
    }

    fn start_with(advertised_port: Option<u16>, env: &[(&str, &str)]) -> Broker {
        Broker::start_full(advertised_port, env, None)
    }

    fn start_full(
        advertised_port: Option<u16>,
        env: &[(&str, &str)],
        data_dir: Option<PathBuf>,
    ) -> Broker {
        let dir = tempfile::Builder::new()
            .prefix("broker-")
            // O_DIRECT needs a real filesystem; /tmp may be tmpfs.
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("creating a temporary directory under the target directory");
        let mut broker = Broker {
            process: None,
            port: 0,
            admin_port: 0,
            advertised_port,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dir,
            output_offsets: (0, 0),
            data_dir,
            host: "127.0.0.1".into(),
            netns: None,
            node_id: 0,
            cores: 2,
        };
        // A port taken between free_ports() and the broker's bind makes the
        // start fail; pick again a few times before giving up.
        for attempt in 1..=3 {
            let ports = free_ports(2);
            broker.port = ports[0];
            broker.admin_port = ports[1];
            match broker.spawn_and_wait() {
                Ok(()) => return broker,
                Err(reason) if attempt < 3 && reason.starts_with(PORT_TAKEN) => {
                    eprintln!(
                        "broker start attempt {attempt} failed ({reason}); trying another port"
                    );
                }
                Err(reason) => panic!("broker did not start: {reason}\n{}", broker.log_tail(40)),
            }
        }
        unreachable!("the last attempt panics or returns")
    }

    /// `count` brokers (node ids 1..=count, one core each) whose controller
    /// quorum is all of them, each with its own ports and data directory,
    /// started together (none is ready before a majority is up).
    pub fn start_cluster(count: usize) -> Vec<Broker> {
        let mut brokers = Broker::cluster(count, &[]);
        Broker::start_together(&mut brokers);
        brokers
    }

    /// Sets one environment variable of this broker's process (at its next
    /// start), e.g. its own `SLUICE_KAFKA__BROKER_RACK`.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// `count` brokers as [`start_cluster`](Self::start_cluster) makes
    /// them, with `env` besides, not started yet. Each broker's
    /// `SLUICE_CONTROLLER_VOTERS` names every voter's internal listener
    /// ([`Broker::rpc_port`]); a test may point some entries elsewhere (a
    /// proxy) with [`Broker::set_voters`].
    pub fn cluster(count: usize, env: &[(&str, &str)]) -> Vec<Broker> {
        let hosts = vec![("127.0.0.1".to_owned(), None); count];
        Broker::cluster_on(&hosts, env)
    }

    /// [`cluster`](Self::cluster) with broker `i` (node id `i + 1`) on
    /// `hosts[i]`: its address, and the network namespace it runs in.
    pub fn cluster_on(hosts: &[(String, Option<String>)], env: &[(&str, &str)]) -> Vec<Broker> {
        let count = hosts.len();
        // Each broker's Kafka, admin and RPC port, all distinct.
        let ports = free_ports(3 * count);
        let mut brokers: Vec<Broker> = (1..=count)
            .map(|id| {
                let dir = tempfile::Builder::new()
                    .prefix("broker-")
                    .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
                    .expect("creating a temporary directory under the target directory");
                Broker {
                    process: None,
                    port: ports[3 * (id - 1)],
                    admin_port: ports[3 * (id - 1) + 1],
                    advertised_port: None,
                    env: Vec::new(),
                    dir,
                    output_offsets: (0, 0),
                    data_dir: None,
                    node_id: id as i32,
                    cores: 1,
                    host: hosts[id - 1].0.clone(),
                    netns: hosts[id - 1].1.clone(),
                }
            })
            .collect();
        let rpc: Vec<(i32, String)> = brokers
            .iter()
            .map(|b| {
                let rpc_port = ports[3 * (b.node_id as usize - 1) + 2];
                (b.node_id, format!("{}:{rpc_port}", b.host))
            })
            .collect();
        for broker in &mut brokers {
            broker.env = vec![
                ("SLUICE_NODE_ID".into(), broker.node_id.to_string()),
                (
                    "SLUICE_RPC_ADDR".into(),
                    rpc[broker.node_id as usize - 1].1.clone(),
                ),
            ];
            broker
                .env
                .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            broker.set_voters(&rpc);
        }
        brokers
    }

    /// Where this broker reaches each voter: (node id, `HOST:PORT`).
    /// Takes effect at the next start.
    pub fn set_voters(&mut self, voters: &[(i32, String)]) {
        let list: Vec<String> = voters
            .iter()
            .map(|(id, addr)| format!("{id}@{addr}"))
            .collect();
        self.env.retain(|(k, _)| k != "SLUICE_CONTROLLER_VOTERS");
        self.env
            .push(("SLUICE_CONTROLLER_VOTERS".into(), list.join(",")));
    }

    /// Starts every broker in `brokers` (all stopped), then waits until each
    /// is ready.
    pub fn start_together(brokers: &mut [Broker]) {
        for broker in brokers.iter_mut() {
            assert!(
                broker.process.is_none(),
                "a broker of the cluster is running"
            );
            if let Err(reason) = broker.wait_for_ports_released() {
                panic!("broker cannot start: {reason}\n{}", broker.log_tail(40));
            }
            if let Err(reason) = broker.spawn() {
                panic!("broker did not start: {reason}\n{}", broker.log_tail(40));
            }
        }
        for broker in brokers.iter_mut() {
            if let Err(reason) = broker.wait_ready() {
                panic!(
                    "broker {} did not start: {reason}\n{}",
                    broker.node_id,
                    broker.log_tail(40)
                );
            }
        }
    }

    /// Its node id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// `HOST:PORT` (loopback unless in a namespace), for clients'
    /// bootstrap.servers.
    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        self.bootstrap()
            .parse()
            .expect("a broker's host is an IPv4 address")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| self.dir.path().join("data"))
    }

    pub fn pid(&self) -> u32 {
        self.process.as_ref().expect("the broker is running").pid()
    }

    /// True while the broker process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.process.as_mut() {
            Some(p) => p.try_wait().is_none(),
            None => false,
        }
    }

    /// SIGTERM, then waits for a clean exit; panics when the broker does not
    /// stop within the deadline or exits with an error.
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_with(libc::SIGTERM)
    }

    /// Sends `signal` (SIGTERM or SIGINT), then waits for a clean exit.
    pub fn stop_with(&mut self, signal: i32) -> ExitStatus {
        let mut process = self
            .process
            .take()
            .expect("stopping a broker that is not running");
        process.signal(signal);
        let status = process.wait_timeout(BROKER_STOP_TIMEOUT);
        let Some(status) = status else {
            process.kill();
            panic!(
                "broker did not stop within {BROKER_STOP_TIMEOUT:?} of signal {signal}\n{}",
                self.log_tail(40)
            );
        };
        assert!(
            status.success(),
            "broker exited with {status} after signal {signal}\n{}",
            self.log_tail(40)
        );
        status
    }

    /// Sends `signal` to the running broker (SIGSTOP, SIGCONT) and leaves
    /// it running.
    pub fn signal(&mut self, signal: i32) {
        let sent = self
            .process
            .as_mut()
            .expect("signalling a broker that is not running")
            .signal(signal);
        assert!(sent, "the broker exited before signal {signal}");
    }

    /// SIGKILL: the broker gets no chance to flush or close anything.
    pub fn kill(&mut self) {
        let mut process = self
            .process
            .take()
            .expect("kill() on a broker that is not running");
        process.kill();
    }

    /// Starts the broker again on the same data directory and port (after
    /// [`stop`](Self::stop) or [`kill`](Self::kill)) and waits until ready.
    pub fn restart(&mut self) {
        assert!(
            self.process.is_none(),
            "restart() while the broker is running; stop() or kill() first"
        );
        if let Err(reason) = self.wait_for_ports_released() {
            panic!("broker cannot restart: {reason}\n{}", self.log_tail(40));
        }
        if let Err(reason) = self.spawn_and_wait() {
            panic!("broker did not restart: {reason}\n{}", self.log_tail(40));
        }
    }

    /// Waits until the Kafka and admin ports can be bound again. The
    /// listening sockets of a SIGKILLed broker outlive its process for a
    /// few milliseconds (seen as LISTEN sockets without an owner: io_uring
    /// lets go of the files of in-flight operations, such as a pending
    /// accept, after the process is reaped); a broker started meanwhile
    /// exits with "address not available".
    fn wait_for_ports_released(&self) -> Result<(), String> {
        if self.netns.is_some() {
            // Its ports are in its own namespace, which nothing else uses.
            return Ok(());
        }
        let deadline = Instant::now() + PORT_RELEASE_TIMEOUT;
        for port in [self.port, self.admin_port] {
            loop {
                match TcpListener::bind(("127.0.0.1", port)) {
                    Ok(_) => break,
                    Err(e) if Instant::now() >= deadline => {
                        return Err(format!(
                            "port {port} still taken {PORT_RELEASE_TIMEOUT:?} after the broker exited: {e}"
                        ))
                    }
                    Err(_) => std::thread::sleep(POLL_INTERVAL),
                }
            }
        }
        Ok(())
    }

    /// What the broker printed (stdout, then stderr) over all its runs.
    pub fn log(&self) -> String {
        let stdout = std::fs::read_to_string(self.stdout_path()).unwrap_or_default();
        let stderr = std::fs::read_to_string(self.stderr_path()).unwrap_or_default();
        format!("--- broker stdout\n{stdout}--- broker stderr\n{stderr}")
    }

    /// What the broker printed to stdout over all its runs.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.stdout_path()).unwrap_or_default()
    }

    /// The last `lines` lines of the broker's stderr.
    pub fn log_tail(&self, lines: usize) -> String {
        let stderr = std::fs::read_to_string(self.stderr_path()).unwrap_or_default();
        let all: Vec<&str> = stderr.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        format!(
            "--- last {lines} lines of the broker's stderr ({})\n{tail}",
            self.stderr_path().display()
        )
    }

    fn stdout_path(&self) -> PathBuf {
        self.dir.path().join("broker.stdout")
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("broker.stderr")
    }

    /// What the current process wrote to `path` (stdout or stderr) so far.
    fn output_since_spawn(&self, path: &Path, offset: u64) -> String {
        let bytes = std::fs::read(path).unwrap_or_default();
        String::from_utf8_lossy(bytes.get(offset as usize..).unwrap_or_default()).into_owned()
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        self.spawn()?;
        self.wait_ready()
    }

    /// Starts the process without waiting for it.
    fn spawn(&mut self) -> Result<(), String> {
        let length = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        self.output_offsets = (length(&self.stdout_path()), length(&self.stderr_path()));
        let open = |path: &Path| -> File {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
        };
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_sluice")]);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_sluice")),
        };
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--kafka-addr")
            .arg(self.bootstrap())
            .arg("--admin-addr")
            .arg(format!("{}:{}", self.host, self.admin_port))
            .arg("--cores")
            .arg(self.cores.to_string());
        if let Some(port) = self.advertised_port {
            command
                .arg("--advertised-kafka-addr")
                .arg(format!("127.0.0.1:{port}"));
        }
        command.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let child = command
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(open(&self.stdout_path()))
            .stderr(open(&self.stderr_path()))
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", env!("CARGO_BIN_EXE_sluice")))?;
        self.process = Some(ProcessGuard::new(
            child,
            format!("sluice on port {}", self.port),
        ));
        Ok(())
    }

    /// Waits until the process started by [`Broker::spawn`] is ready.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        loop {
            if let Some(status) = self.process.as_mut().and_then(|p| p.try_wait()) {
                self.process = None;
                return Err(format!("broker exited with {status} during start-up"));
            }
            let stderr = self.output_since_spawn(&self.stderr_path(), self.output_offsets.1);
            let outcome = if stderr.contains("cannot bind") {
                Err(PORT_TAKEN.to_owned())
            } else {
                match self.check_ready() {
                    Ok(()) => return Ok(()),
                    Err(NotReady::PortShared(reason)) => Err(format!("{PORT_TAKEN}: {reason}")),
                    Err(NotReady::Yet(reason)) if Instant::now() >= deadline => Err(format!(
                        "not ready within {BROKER_START_TIMEOUT:?}: {reason}"
                    )),
                    Err(NotReady::Yet(_)) => Ok(()),
                }
            };
            if let Err(reason) = outcome {
                if let Some(mut process) = self.process.take() {
                    process.kill();
                }
                return Err(reason);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Ready means: the start-up line is printed, and a Metadata round trip
    /// on a new connection lists this broker, with this data directory's
    /// cluster id (which tells us no other process answers on the port).
    fn check_ready(&self) -> Result<(), NotReady> {
        let stdout = self.output_since_spawn(&self.stdout_path(), self.output_offsets.0);
        if !stdout
            .lines()
            .any(|l| l.starts_with("sluice ") && l.contains(" serving"))
        {
            return Err(NotReady::Yet(format!(
                "start-up line not printed yet (stdout: {stdout:?})"
            )));
        }
        let mut conn = wire::Conn::connect(self.addr(), Duration::from_secs(5))
            .map_err(|e| NotReady::Yet(format!("connect: {e}")))?;
        let metadata = conn
            .metadata_v2(&[])
            .map_err(|e| NotReady::Yet(format!("metadata: {e}")))?;
        let expected_broker = wire::MetadataBroker {
            node_id: self.node_id,
            host: self.host.clone(),
            port: i32::from(self.advertised_port.unwrap_or(self.port)),
        };
        // A cluster lists its other live brokers too.
        if !metadata.brokers.contains(&expected_broker) {
            return Err(NotReady::PortShared(format!(
                "port {} answers for brokers {:?}",
                self.port, metadata.brokers
            )));
        }
        let cluster_id = std::fs::read_to_string(self.data_dir().join("cluster_id"))
            .map_err(|e| NotReady::Yet(format!("reading the cluster id: {e}")))?;
        if metadata.cluster_id.as_deref() != Some(cluster_id.trim()) {
            return Err(NotReady::PortShared(format!(
                "port {} answers with cluster id {:?}, this broker's is {:?}",
                self.port, metadata.cluster_id, cluster_id
            )));
        }
        Ok(())
    }
}

/// Why a broker is not ready yet.
enum NotReady {
    /// Still starting; try again.
    Yet(String),
    /// Another process answers on the port (SO_REUSEPORT lets processes of
    /// the same user share it); this start cannot succeed.
    PortShared(String),
}

/// How a start that lost its port to another process fails.
const PORT_TAKEN: &str = "the port is taken";

impl Drop for Broker {
    fn drop(&mut self) {
        // Reap first, so the log is complete; on a failing test show it.
        drop(self.process.take());
        if std::thread::panicking() {
            eprintln!(
                "broker on port {} (data dir {}):\n{}",
                self.port,
                self.data_dir().display(),
                self.log_tail(60)
            );
        }
    }
}

/// What an external command printed and how it ended.
pub struct CmdOutput {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CmdOutput {
    pub fn stdout_text(&self) -> String {
        String::from_utf8(self.stdout.clone())
            .unwrap_or_else(|e| panic!("{}: stdout is not UTF-8: {e}", self.what))
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Panics (showing both outputs) unless the command exited with 0.
    pub fn assert_success(&self) -> &CmdOutput {
        assert!(
            self.status.success(),
            "{} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.status,
            String::from_utf8_lossy(&self.stdout),
            self.stderr_text()
        );
        self
    }
}

fn describe(command: &Command) -> String {
    let mut what = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        let arg = arg.to_string_lossy();
        // Scripts (python3 -c) are long; failures show their traceback.
        let arg = if arg.contains('\n') {
            format!("<{}-line script>", arg.lines().count())
        } else {
            arg.into_owned()
        };
        what.push(' ');
        what.push_str(&arg);
    }
    what
}

fn read_all(mut from: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = from.read_to_end(&mut out);
        out
    })
}

/// Runs `command` with `stdin` as its standard input and waits for it to
/// exit; panics (showing what it printed) when it runs past `timeout`. The
/// process is killed and reaped however this returns.
pub fn run(command: &mut Command, stdin: &[u8], timeout: Duration) -> CmdOutput {
    let what = describe(command);
    let child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
    let mut process = ProcessGuard::new(child, what.clone());
    let child = process.child.as_mut().expect("just spawned");
    let mut input = child.stdin.take().expect("stdin is piped");
    let stdin = stdin.to_vec();
    // A writer thread: a child that fills its stdout pipe before reading all
    // of its stdin must not deadlock us.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
        // Dropping `input` closes the pipe: end of input.
    });
    let stdout = read_all(child.stdout.take().expect("stdout is piped"));
    let stderr = read_all(child.stderr.take().expect("stderr is piped"));
    let status = process.wait_timeout(timeout);
    let status = match status {
        Some(status) => status,
        None => {
            process.kill();
            let stdout = stdout.join().unwrap_or_default();
            let stderr = stderr.join().unwrap_or_default();
            panic!(
                "{what} did not finish within {timeout:?}; killed\n--- stdout\n{}\n--- stderr\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
    };
    let _ = writer.join();
    CmdOutput {
        what,
        status,
        stdout: stdout.join().expect("the stdout reader does not panic"),
        stderr: stderr.join().expect("the stderr reader does not panic"),
    }
}

/// Runs kcat against `broker` with `args` (after `-b BOOTSTRAP`).
pub fn kcat(broker: &Broker, args: &[&str], stdin: &[u8]) -> CmdOutput {
    kcat_at(&broker.bootstrap(), args, stdin)
}

/// Runs `kcat -b BOOTSTRAP ARGS...` with a timeout.
pub fn kcat_at(bootstrap: &str, args: &[&str], stdin: &[u8]) -> CmdOutput {
    run(
        Command::new("kcat").arg("-b").arg(bootstrap).args(args),
        stdin,
        CLIENT_TIMEOUT,
    )
}

/// The Python interpreter the tests use: `$SLUICE_TEST_PYTHON`, or
/// `python3` (scripts/test installs the clients for it).
pub fn python_interpreter() -> String {
    std::env::var("SLUICE_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Python helpers every snippet starts with (see the file).
pub const PY_HELPERS: &str = include_str!("clients.py");

/// Runs `python3 -c PY_HELPERS+snippet BOOTSTRAP args...` with a timeout.
pub fn python(broker: &Broker, snippet: &str, args: &[&str], timeout: Duration) -> CmdOutput {
    python_at(&broker.bootstrap(), snippet, args, timeout)
}

/// [`python`] against any bootstrap address (a Kafka node as well).
pub fn python_at(bootstrap: &str, snippet: &str, args: &[&str], timeout: Duration) -> CmdOutput {
    let script = format!("{PY_HELPERS}\n# --- test snippet\n{snippet}");
    run(
        Command::new(python_interpreter())
            .arg("-c")
            .arg(script)
            .arg(bootstrap)
            .args(args)
            .env("PYTHONUNBUFFERED", "1"),
        b"",
        timeout,
    )
}

/// Which stream a line of a [`Spawned`] process came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A process that runs beside the test, whose output lines arrive as they
/// are printed. Killed and reaped on drop.
pub struct Spawned {
    pub process: ProcessGuard,
    pub what: String,
    lines: mpsc::Receiver<(Stream, String)>,
    /// Every line received so far, in arrival order.
    pub seen: Vec<(Stream, String)>,
    stdin: Option<std::process::ChildStdin>,
}

impl Spawned {
    pub fn start(command: &mut Command) -> Spawned {
        let what = describe(command);
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdin = child.stdin.take();
        for (stream, pipe) in [
            (
                Stream::Stdout,
                Box::new(child.stdout.take().expect("piped")) as Box<dyn Read + Send>,
            ),
            (
                Stream::Stderr,
                Box::new(child.stderr.take().expect("piped")) as Box<dyn Read + Send>,
            ),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((stream, line)).is_err() {
                        break;
                    }
                }
            });
        }
        Spawned {
            process: ProcessGuard::new(child, what.clone()),
            what,
            lines,
            seen: Vec::new(),
            stdin,
        }
    }

    /// Writes to the process's standard input.
    pub fn write_stdin(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is still open");
        stdin
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("writing to {}: {e}", self.what));
        stdin
            .flush()
            .unwrap_or_else(|e| panic!("writing to {}: {e}", self.what));
    }

    /// Closes the process's standard input (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for a line of `stream` matching `predicate` (looking at lines
    /// already seen first); panics at the deadline, showing the output.
    pub fn wait_for_line(
        &mut self,
        stream: Stream,
        timeout: Duration,
        predicate: impl Fn(&str) -> bool,
    ) -> String {
        if let Some((_, line)) = self.seen.iter().find(|(s, l)| *s == stream && predicate(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok((s, line)) => {
                    self.seen.push((s, line.clone()));
                    if s == stream && predicate(&line) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!(
                        "{} closed its output without the expected line\n{}",
                        self.what,
                        self.output()
                    )
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for a line from {}\n{}",
                self.what,
                self.output()
            );
        }
    }

    /// Waits until `count` lines of `stream` match `predicate` (counting
    /// lines already seen); panics at the deadline, showing the output.
    pub fn wait_for_lines(
        &mut self,
        stream: Stream,
        count: usize,
        timeout: Duration,
        predicate: impl Fn(&str) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        let mut matched = self
            .seen
            .iter()
            .filter(|(s, l)| *s == stream && predicate(l))
            .count();
        while matched < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok((s, line)) => {
                    if s == stream && predicate(&line) {
                        matched += 1;
                    }
                    self.seen.push((s, line));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!(
                        "{} closed its output after {matched} of {count} expected lines\n{}",
                        self.what,
                        self.output()
                    )
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} with {matched} of {count} expected lines from {}\n{}",
                self.what,
                self.output()
            );
        }
    }

    /// Waits for the process to exit; panics at the deadline. Collects the
    /// rest of its output.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let Some(status) = self.process.wait_timeout(timeout) else {
            self.process.kill();
            self.drain();
            panic!(
                "{} did not exit within {timeout:?}; killed\n{}",
                self.what,
                self.output()
            );
        };
        self.drain();
        status
    }

    /// SIGKILL, reap, and collect the rest of the output.
    pub fn kill(&mut self) -> ExitStatus {
        let status = self.process.kill();
        self.drain();
        status
    }

    /// Takes in every line printed so far, without waiting.
    pub fn collect_available(&mut self) {
        while let Ok(entry) = self.lines.try_recv() {
            self.seen.push(entry);
        }
    }

    /// Lines of `stream` seen so far.
    pub fn lines(&self, stream: Stream) -> Vec<String> {
        self.seen
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Everything seen so far, for failure messages.
    pub fn output(&self) -> String {
        let mut out = String::new();
        for (stream, line) in &self.seen {
            out.push_str(if *stream == Stream::Stdout {
                "out| "
            } else {
                "err| "
            });
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// Reads the remaining lines once the process has exited (the pipes
    /// close when it and its children are gone).
    fn drain(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(entry) => self.seen.push(entry),
                Err(_) => return,
            }
        }
    }
}

/// The `i`-th test message, the same as `message(i)` in clients.py:
/// distinct keys, values of varying length that compress well.
pub fn message(i: usize) -> (Vec<u8>, Vec<u8>) {
    let key = format!("key-{i}").into_bytes();
    let value = format!("value-{i}-{}", "abcdefgh".repeat(i % 50)).into_bytes();
    (key, value)
}

/// Lowercase hex, as Python's `bytes.hex()`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The line clients.py's `emit` prints for a message.
pub fn emitted(offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> String {
    let show = |b: Option<&[u8]>| b.map_or_else(|| "-".to_owned(), hex);
    format!("{offset} {} {}", show(key), show(value))
}

/// The lines clients.py prints for messages `first..first+count` stored at
/// offsets `first_offset..`.
pub fn emitted_messages(first: usize, count: usize, first_offset: i64) -> Vec<String> {
    (0..count)
        .map(|n| {
            let (key, value) = message(first + n);
            emitted(first_offset + n as i64, Some(&key), Some(&value))
        })
        .collect()
}

/// A topic name unique to this test (and this run).
pub fn topic(test: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{test}-{}-{n}", std::process::id())
}

/// Reads partition `topic`/`partition` from offset 0 to its high watermark
/// with hand-encoded Fetch v4 requests. Returns the high watermark and
/// every batch, in order; panics on an error code or a stalled read.
pub fn fetch_all(broker: &Broker, topic: &str, partition: i32) -> (i64, Vec<wire::Batch>) {
    let mut conn = wire::Conn::connect(broker.addr(), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", broker.bootstrap()));
    let mut batches: Vec<wire::Batch> = Vec::new();
    let mut offset = 0i64;
    loop {
        let answer = conn
            .fetch_v4(topic, partition, offset, 1 << 20)
            .unwrap_or_else(|e| panic!("fetch {topic}/{partition} at {offset}: {e}"));
        assert_eq!(
            answer.error_code,
            wire::ERROR_NONE,
            "fetch {topic}/{partition} at {offset}"
        );
        let high_watermark = answer.high_watermark;
        let before = offset;
        for batch in wire::decode_batches(&answer.records)
            .unwrap_or_else(|e| panic!("decoding {topic}/{partition} at {offset}: {e}"))
        {
            // A fetch starts at the batch holding `offset`.
            let next = batch.base_offset + i64::from(batch.last_offset_delta) + 1;
            if next > offset {
                offset = next;
                batches.push(batch);
            }
        }
        if offset >= high_watermark {
            return (high_watermark, batches);
        }
        assert!(offset > before, "fetch {topic}/{partition} at {offset} returned no batch below the high watermark {high_watermark}");
    }
}

/// The broker's `/metrics` text (Prometheus exposition), fetched with a
/// plain HTTP/1.1 GET on its admin port.
pub fn metrics(broker: &Broker) -> String {
    let addr: SocketAddr = format!("{}:{}", broker.host, broker.admin_port())
        .parse()
        .expect("an IPv4 address");
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .expect("connecting to the admin port");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("setting a read timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .expect("sending the metrics request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("reading the metrics response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("an HTTP response has a head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The sum of a metric's samples over its series (every shard), or `None`
/// when the text has no sample of it.
pub fn metric_sum(text: &str, name: &str) -> Option<u64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ')?;
        let series_name = series.split('{').next().unwrap_or(series);
        if series_name == name {
            let value: u64 = value.parse().ok()?;
            found = Some(found.unwrap_or(0) + value);
        }
    }
    found
}

/// Polls `metric` in `/metrics` until `want` holds or `timeout` passes;
/// returns the last value.
pub fn wait_for_metric(
    broker: &Broker,
    metric: &str,
    timeout: Duration,
    want: impl Fn(u64) -> bool,
) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let value = metric_sum(&metrics(broker), metric)
            .unwrap_or_else(|| panic!("no metric {metric} in /metrics"));
        if want(value) || Instant::now() >= deadline {
            return value;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// The resident set size (VmRSS) of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    try_rss_kib(pid).unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// [`rss_kib`], or `None` when the process is gone.
pub fn try_rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
