//! Network namespaces for tests that cut a broker off: one namespace per
//! broker, each joined to a bridge in the test's namespace by a veth pair,
//! so every broker reaches the others (and the test reaches every broker)
//! until its link is taken down.
//!
//! Owns: the namespaces, veths and bridge it creates (names carry the test
//! process's id, the subnet is derived from it), all removed on drop.
//! Needs root (CAP_NET_ADMIN) and `ip`; [`Lab::create`] says why not when
//! they are missing, so a test can tell "cannot run here" from a failure.

use std::process::Command;

/// Namespaces joined by one bridge.
pub struct Lab {
    tag: String,
    subnet: String,
    count: usize,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Lab {
    /// `count` namespaces on one bridge; node `i` (1-based) gets the
    /// address [`Lab::host`]`(i)`.
    pub fn create(count: usize) -> Result<Lab, String> {
        let pid = std::process::id();
        let lab = Lab {
            tag: format!("{:05}", pid % 100_000),
            subnet: format!("10.{}.{}", 100 + (pid / 250) % 150, pid % 250),
            count,
        };
        lab.build().inspect_err(|_| lab.remove())?;
        Ok(lab)
    }

    fn build(&self) -> Result<(), String> {
        let bridge = self.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}.254/24", self.subnet),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 1..=self.count {
            let (ns, outer, inner) = (self.namespace(i), self.veth(i), self.peer(i));
            ip(&["netns", "add", &ns])?;
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["link", "set", &outer, "master", &bridge])?;
            ip(&["link", "set", &outer, "up"])?;
            let host = format!("{}/24", self.host(i));
            ip(&["-n", &ns, "addr", "add", &host, "dev", &inner])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    fn bridge(&self) -> String {
        format!("slb{}", self.tag)
    }

    fn veth(&self, i: usize) -> String {
        format!("slv{}{i}", self.tag)
    }

    fn peer(&self, i: usize) -> String {
        format!("slp{}{i}", self.tag)
    }

    /// Node `i`'s namespace.
    pub fn namespace(&self, i: usize) -> String {
        format!("sluice-{}-{i}", self.tag)
    }

    /// Node `i`'s address.
    pub fn host(&self, i: usize) -> String {
        format!("{}.{i}", self.subnet)
    }

    /// (address, namespace) of every node, for `Broker::cluster_on`.
    pub fn hosts(&self) -> Vec<(String, Option<String>)> {
        (1..=self.count)
            .map(|i| (self.host(i), Some(self.namespace(i))))
            .collect()
    }

    /// Cuts node `i` off from everything (its link goes down).
    pub fn cut(&self, i: usize) {
        ip(&["link", "set", &self.veth(i), "down"]).expect("taking a link down");
    }

    /// Joins node `i` again.
    pub fn heal(&self, i: usize) {
        ip(&["link", "set", &self.veth(i), "up"]).expect("bringing a link up");
    }

    fn remove(&self) {
        for i in 1..=self.count {
            let _ = ip(&["netns", "del", &self.namespace(i)]);
            let _ = ip(&["link", "del", &self.veth(i)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.remove();
    }
}
