//! Requests seen and sampled per service.
//!
//! The SDKs report their request counts to `SamplingTargets` per sampling
//! rule under a random `ClientID`; the segments they send carry a service
//! name but no client ID. Both come from the same process, so the two are
//! joined through the process: the peer address of the sampling request
//! and the source address of the datagrams lead to the same owner, a
//! process id on this machine (read from `/proc` on Linux) or the sender's
//! IP address when it is not a loopback one (a container, another host).
//! A client whose owner cannot be told apart is listed on its own.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::procfs::{self, Proto};

/// UDP sources and sampling clients remembered, each; past this the one
/// seen least recently goes.
pub const MAX_REMEMBERED: usize = 1_000;
/// Service names remembered per UDP source.
const MAX_NAMES_PER_SOURCE: usize = 16;
/// A failed owner lookup is tried again after this many seconds.
const RETRY_SECS: f64 = 10.0;

/// Who sent something.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Owner {
    /// A process on this machine.
    Process(u32),
    /// Another machine or container, by IP address.
    Host(IpAddr),
}

/// Request counts reported for one rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Counts {
    /// Requests the SDK saw.
    pub request_count: u64,
    /// Requests it sampled.
    pub sampled_count: u64,
    /// Requests sampled by borrowing from the reservoir.
    pub borrow_count: u64,
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.request_count = self.request_count.saturating_add(o.request_count);
        self.sampled_count = self.sampled_count.saturating_add(o.sampled_count);
        self.borrow_count = self.borrow_count.saturating_add(o.borrow_count);
    }
}

#[derive(Debug, Default)]
struct Source {
    names: BTreeSet<String>,
    last_seen: u64,
}

#[derive(Debug, Default)]
struct Client {
    owner: Option<Owner>,
    by_rule: BTreeMap<String, Counts>,
    last_seen: u64,
}

#[derive(Debug, Clone, Copy)]
enum Lookup {
    Found(u32),
    Failed(f64),
}

/// What is known about the processes that send segments and ask for
/// sampling targets.
#[derive(Debug, Default)]
pub struct Clients {
    sources: HashMap<SocketAddr, Source>,
    samplers: HashMap<String, Client>,
    udp_owners: HashMap<SocketAddr, Lookup>,
    tick: u64,
}

/// One line of the per-service view.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceCounts {
    /// The service names the owner's segments carry (empty when it sent
    /// none: then `Process` names it).
    pub services: Vec<String>,
    /// The process name, for a process on this machine.
    pub process: Option<String>,
    /// Who it is.
    pub owner: Option<Owner>,
    /// The sampling clients (`ClientID`) counted here.
    pub clients: Vec<String>,
    /// Counts over every rule.
    pub total: Counts,
    /// Counts per rule.
    pub by_rule: BTreeMap<String, Counts>,
}

/// How to find the owner of an address; `procfs` in the server, a table in
/// tests.
pub type Resolver<'a> = &'a dyn Fn(Proto, SocketAddr) -> Option<u32>;

/// The owner of `addr`, when telling it apart needs no lookup.
fn owner_by_ip(addr: SocketAddr) -> Option<Owner> {
    (!addr.ip().is_loopback() && !addr.ip().is_unspecified()).then(|| Owner::Host(addr.ip()))
}

/// Finds the owner of a sampling request's peer address (a lookup in
/// `/proc` for loopback addresses). Run it while the connection is open.
pub fn sampling_peer_owner(peer: SocketAddr, resolve: Resolver<'_>) -> Option<Owner> {
    owner_by_ip(peer).or_else(|| resolve(Proto::Tcp, peer).map(Owner::Process))
}

impl Clients {
    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The owner found for a sampling client, if any.
    pub fn owner_of(&self, client_id: &str) -> Option<Owner> {
        self.samplers.get(client_id)?.owner.clone()
    }

    /// Notes a segment named `name` that arrived from `from`.
    pub fn segment_from(&mut self, from: SocketAddr, name: &str) {
        let tick = self.next_tick();
        if !self.sources.contains_key(&from) && self.sources.len() >= MAX_REMEMBERED {
            evict_oldest(&mut self.sources, |s| s.last_seen);
        }
        let source = self.sources.entry(from).or_default();
        source.last_seen = tick;
        if source.names.len() < MAX_NAMES_PER_SOURCE && !source.names.contains(name) {
            source.names.insert(name.to_string());
        }
    }

    /// Notes counts a sampling client reported for `rule`; `owner` is
    /// [`sampling_peer_owner`] of the request (kept from an earlier report
    /// when this one could not tell).
    pub fn sampling_report(
        &mut self,
        client_id: &str,
        owner: Option<Owner>,
        rule: &str,
        counts: Counts,
    ) {
        let tick = self.next_tick();
        if !self.samplers.contains_key(client_id) && self.samplers.len() >= MAX_REMEMBERED {
            evict_oldest(&mut self.samplers, |c| c.last_seen);
        }
        let client = self.samplers.entry(client_id.to_string()).or_default();
        client.last_seen = tick;
        if owner.is_some() {
            client.owner = owner;
        }
        client
            .by_rule
            .entry(rule.to_string())
            .or_default()
            .add(counts);
    }

    /// Counts per owner: the services each one's segments name, and what
    /// its sampling clients reported. Owners that only sent segments are
    /// left out (nothing was reported for them).
    pub fn per_service(&mut self, now: f64, resolve: Resolver<'_>) -> Vec<ServiceCounts> {
        // Owners of the UDP sources, looked up once (failures again later).
        let mut names: HashMap<Owner, BTreeSet<String>> = HashMap::new();
        for (addr, source) in &self.sources {
            let owner = match owner_by_ip(*addr) {
                Some(o) => Some(o),
                None => {
                    let cached = self.udp_owners.get(addr).copied();
                    let lookup = match cached {
                        Some(Lookup::Found(pid)) => Lookup::Found(pid),
                        Some(Lookup::Failed(at)) if now - at < RETRY_SECS => Lookup::Failed(at),
                        _ => match resolve(Proto::Udp, *addr) {
                            Some(pid) => Lookup::Found(pid),
                            None => Lookup::Failed(now),
                        },
                    };
                    self.udp_owners.insert(*addr, lookup);
                    match lookup {
                        Lookup::Found(pid) => Some(Owner::Process(pid)),
                        Lookup::Failed(_) => None,
                    }
                }
            };
            if let Some(owner) = owner {
                names
                    .entry(owner)
                    .or_default()
                    .extend(source.names.iter().cloned());
            }
        }
        self.udp_owners
            .retain(|addr, _| self.sources.contains_key(addr));
        let mut groups: BTreeMap<(Option<Owner>, String), ServiceCounts> = BTreeMap::new();
        for (id, client) in &self.samplers {
            // Clients with an owner are grouped by it; the others stand alone.
            let key = match &client.owner {
                Some(o) => (Some(o.clone()), String::new()),
                None => (None, id.clone()),
            };
            let g = groups.entry(key).or_insert_with(|| {
                let services: Vec<String> = client
                    .owner
                    .as_ref()
                    .and_then(|o| names.get(o))
                    .map(|n| n.iter().cloned().collect())
                    .unwrap_or_default();
                let process = match client.owner {
                    Some(Owner::Process(pid)) => procfs::process_name(pid),
                    _ => None,
                };
                ServiceCounts {
                    services,
                    process,
                    owner: client.owner.clone(),
                    clients: Vec::new(),
                    total: Counts::default(),
                    by_rule: BTreeMap::new(),
                }
            });
            g.clients.push(id.clone());
            for (rule, c) in &client.by_rule {
                g.total.add(*c);
                g.by_rule.entry(rule.clone()).or_default().add(*c);
            }
        }
        let mut out: Vec<ServiceCounts> = groups.into_values().collect();
        for g in &mut out {
            g.clients.sort();
        }
        out.sort_by(|a, b| {
            (a.services.is_empty(), &a.services, &a.process, &a.clients).cmp(&(
                b.services.is_empty(),
                &b.services,
                &b.process,
                &b.clients,
            ))
        });
        out
    }
}

fn evict_oldest<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    seen: impl Fn(&V) -> u64,
) {
    // Linear, but only for a new entry of a full map, and the map is capped.
    let oldest = map
        .iter()
        .min_by_key(|(_, v)| seen(v))
        .map(|(k, _)| k.clone());
    if let Some(k) = oldest {
        map.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    fn counts(r: u64, s: u64) -> Counts {
        Counts {
            request_count: r,
            sampled_count: s,
            borrow_count: 0,
        }
    }

    #[test]
    fn joins_clients_and_segments_through_their_process() {
        // Process 10 sends "bff" segments from :5000 and asks for targets from :6000;
        // process 11 sends "api" from :5001 and asks from :6001; a third client
        // cannot be placed.
        let table: HashMap<(Proto, u16), u32> = [
            ((Proto::Udp, 5000), 10),
            ((Proto::Tcp, 6000), 10),
            ((Proto::Tcp, 6002), 10),
            ((Proto::Udp, 5001), 11),
            ((Proto::Tcp, 6001), 11),
        ]
        .into_iter()
        .collect();
        let resolve = |p: Proto, a: SocketAddr| table.get(&(p, a.port())).copied();
        let mut c = Clients::default();
        c.segment_from(at("127.0.0.1:5000"), "bff");
        c.segment_from(at("127.0.0.1:5001"), "api");
        c.segment_from(at("10.1.0.7:4000"), "remote-svc");
        let own = |port: u16| sampling_peer_owner(at(&format!("127.0.0.1:{port}")), &resolve);
        c.sampling_report("a", own(6000), "Default", counts(10, 10));
        c.sampling_report("a", own(6002), "health", counts(5, 0));
        // A later report whose owner could not be told keeps the earlier one.
        c.sampling_report("a", None, "Default", counts(1, 1));
        c.sampling_report("b", own(6001), "Default", counts(4, 2));
        c.sampling_report("c", own(6999), "Default", counts(3, 0));
        c.sampling_report(
            "d",
            sampling_peer_owner(at("10.1.0.7:40000"), &resolve),
            "Default",
            counts(7, 7),
        );
        let view = c.per_service(0.0, &resolve);
        let lines: Vec<(Vec<String>, Vec<String>, u64, u64)> = view
            .iter()
            .map(|g| {
                (
                    g.services.clone(),
                    g.clients.clone(),
                    g.total.request_count,
                    g.total.sampled_count,
                )
            })
            .collect();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            lines,
            [
                (s(&["api"]), s(&["b"]), 4, 2),
                (s(&["bff"]), s(&["a"]), 16, 11),
                (s(&["remote-svc"]), s(&["d"]), 7, 7),
                (s(&[]), s(&["c"]), 3, 0),
            ]
        );
        assert_eq!(view[1].by_rule["health"], counts(5, 0));
        assert_eq!(view[1].owner, Some(Owner::Process(10)));
    }

    #[test]
    fn memory_is_bounded() {
        let mut c = Clients::default();
        for i in 0..(MAX_REMEMBERED + 50) {
            let port = u16::try_from(1000 + i).unwrap_or(u16::MAX);
            c.segment_from(SocketAddr::from(([127, 0, 0, 1], port)), "s");
            c.sampling_report(&format!("{i:024x}"), None, "Default", counts(1, 1));
        }
        assert_eq!(c.sources.len(), MAX_REMEMBERED);
        assert_eq!(c.samplers.len(), MAX_REMEMBERED);
        assert!(!c.samplers.contains_key(&format!("{:024x}", 0)));
        for i in 0..100 {
            c.segment_from(at("127.0.0.1:1999"), &format!("name-{i}"));
        }
        assert_eq!(
            c.sources.get(&at("127.0.0.1:1999")).map(|s| s.names.len()),
            Some(MAX_NAMES_PER_SOURCE)
        );
    }
}
