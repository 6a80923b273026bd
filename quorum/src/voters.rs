//! The controller quorum's voters as a user writes them:
//! `--controller-voters 1@HOST:PORT,2@HOST:PORT,3@HOST:PORT` (the shape of
//! Kafka's `controller.quorum.voters`).
//!
//! Owns: parsing and checking that list. Invariants: ids are unique and
//! non-negative, every address is `HOST:PORT` with a port, and the list is
//! not empty.

use std::collections::BTreeMap;

use crate::{NodeId, Peer};

/// Parses `1@host:port,2@host:port` into voters by id.
pub fn parse(list: &str) -> Result<BTreeMap<NodeId, Peer>, String> {
    let mut voters = BTreeMap::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addr) = entry
            .split_once('@')
            .ok_or_else(|| format!("controller voter {entry:?} is not ID@HOST:PORT"))?;
        let id: NodeId = id
            .parse()
            .map_err(|_| format!("controller voter {entry:?}: {id:?} is not a node id"))?;
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("controller voter {entry:?}: {addr:?} has no port"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!(
                "controller voter {entry:?}: {addr:?} is not HOST:PORT"
            ));
        }
        let peer = Peer {
            rpc_addr: addr.to_owned(),
        };
        if voters.insert(id, peer).is_some() {
            return Err(format!("controller voter {id} is listed twice"));
        }
    }
    if voters.is_empty() {
        return Err("the controller voter list is empty".into());
    }
    Ok(voters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kafka_style_list_parses_and_bad_ones_say_why() {
        let voters = parse("1@127.0.0.1:9093, 2@127.0.0.1:9094,3@localhost:9095").expect("parses");
        assert_eq!(voters.len(), 3);
        assert_eq!(voters[&3].rpc_addr, "localhost:9095");
        for bad in [
            "",
            "1",
            "x@h:1",
            "1@h",
            "1@h:port",
            "1@:9",
            "1@h:1,1@h:2",
            "-1@h:1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
