//! Flow logs: every aggregation interval the agent drains the kernel's per-flow counters
//! ([`drain`]) and writes one record per flow and interface ([`format`]), like AWS VPC flow logs.
//!
//! **Who sees a flow.** The kernel counts each packet once, at the router interface it arrived
//! on. The agent presents that as AWS does, per network interface (ENI), each seeing its own
//! traffic. An instance's (or NAT gateway's) ENI is named `eni-VPC-NAME`; the internet gateway
//! uplink is presented under its router interface name.
//!
//! - The **source side**: a packet from an instance arriving on its subnet interface is an
//!   `egress` record of that instance's ENI (ACCEPT or REJECT). A packet arriving on the
//!   uplink (or from an address that is no instance's) is an `ingress` record of the router
//!   interface it arrived on.
//! - The **destination side**, for accepted packets: an `ingress` record of the destination
//!   instance's ENI, or an `egress` record of the uplink, with `srcaddr`/`dstaddr` as they are
//!   on that interface (after translation) and `pkt-srcaddr`/`pkt-dstaddr` the original ones.
//! - Packets rejected by the destination's inbound rules (network ACL inbound, security group
//!   inbound) are an `ingress` REJECT record of the destination ENI (addressed with its private
//!   address, also when the packet came from the internet to its public one), and an `egress`
//!   ACCEPT record of the source ENI (its own rules let the packet out), as in AWS.
//! - Only security group and network ACL drops are REJECT records; other drops (no route,
//!   spoofed, malformed, ...) are counted by reason (`status`, metrics, `flows`), not logged.
//! - Traffic through a **NAT gateway** is also seen by the gateway's ENI, as in AWS's example:
//!   `ingress` from the instance (to the gateway's private address, `pkt-dstaddr` the internet
//!   host) and `egress` from its private address to the internet host; the replies `ingress`
//!   from the internet host to its private address and `egress` to the instance.
//! - `bytes` is the IP packet (no Ethernet header); `tcp-flags` ORs FIN 1, SYN 2, RST 4 and ACK
//!   only with SYN (SYN-ACK 18), as AWS does; `version` is the highest among the format's fields.
//!
//! ICMP and other protocols without ports have `srcport`/`dstport` 0, as AWS writes them (the
//! kernel keys echo flows by identifier, so two pings in one interval are two records). NODATA: an ENI or uplink without a record in the
//! interval. SKIPDATA: a router interface whose packets the kernel could not record (FLOWS full:
//! `FLOWS_SKIPPED`), or entries the drain could not read (interface `-`).

pub mod drain;
pub mod format;
pub mod ipfix;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::{File, OpenOptions},
    io,
    net::IpAddr,
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use vpc_common::{
    DropReason,
    flow::{FLOW_ACCEPT, FlowKey, FlowStats},
};

use crate::config::{
    ValidatedConfig,
    validated::{
        DEFAULT_AGGREGATION_INTERVAL, FlowLogDestination, FlowLogScope, InterfaceRole, TrafficType,
    },
};
pub use drain::Drained;
pub use format::{DEFAULT_FLOW_LOG_FIELDS, Direction, LogStatus, Record, Traffic};
use vpc_common::proto::{PROTO_TCP, PROTO_UDP};

/// `account-id` of every record (the agent has no account).
pub const ACCOUNT_ID: &str = "-";

#[derive(Debug, thiserror::Error)]
pub enum FlowLogError {
    #[error("cannot open the flow log {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the flow log {destination} ({lost} records lost)")]
    Lost {
        destination: String,
        lost: usize,
        #[source]
        source: io::Error,
    },
    #[error("cannot reach the IPFIX collector {destination}")]
    Collector {
        destination: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "flow log destination must be 'stdout', 'file:/absolute/path' or 'ipfix:HOST:PORT', \
         got '{0}'"
    )]
    BadDestination(String),
}

/// Parses `stdout` | `file:PATH` (the `--flow-log` option).
pub fn parse_destination(text: &str) -> Result<FlowLogDestination, FlowLogError> {
    let bad = || FlowLogError::BadDestination(text.to_owned());
    if text == "stdout" {
        return Ok(FlowLogDestination::Stdout);
    }
    if let Some(target) = text.strip_prefix("ipfix:") {
        let (host, port) = crate::config::validated::parse_host_port(target).ok_or_else(bad)?;
        return Ok(FlowLogDestination::Ipfix { host, port });
    }
    match text.strip_prefix("file:") {
        Some(path) if !path.is_empty() => Ok(FlowLogDestination::File(PathBuf::from(path))),
        _ => Err(bad()),
    }
}

/// Counters of what the flow log did, kept in the agent record for `status` and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowLogCounters {
    /// Records written (OK, NODATA and SKIPDATA).
    pub records_written: u64,
    /// SKIPDATA records written.
    pub skipdata_records: u64,
    /// Records that could not be written (disk full, destination gone): none is written in
    /// part.
    #[serde(default)]
    pub records_lost: u64,
    /// Packets the kernel could not record (FLOWS full) plus entries the drain could not read.
    pub packets_skipped: u64,
    /// Drained totals by action (kernel flow entries, counted once, at ingress).
    pub accepted_packets: u64,
    pub accepted_bytes: u64,
    pub rejected_packets: u64,
    pub rejected_bytes: u64,
    pub drains: u64,
    /// The last drain: entries and how long reading and deleting them took.
    pub last_drain_flows: u64,
    pub last_drain_micros: u64,
}

/// Who a record belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Subject {
    interface_id: String,
    vpc: Option<String>,
    subnet: Option<String>,
    instance: Option<String>,
}

/// A router interface.
#[derive(Clone, Debug)]
struct RouterIface {
    name: String,
    vpc: String,
    /// `None` for an uplink.
    subnet: Option<String>,
}

/// Names of interfaces and ENIs, from the running definition.
#[derive(Clone, Debug, Default)]
pub struct Names {
    ifaces: BTreeMap<u32, RouterIface>,
    /// (VPC, private IPv4 address or IPv6 address) -> ENI.
    enis: BTreeMap<(String, IpAddr), Subject>,
    /// (VPC, public address) -> the private address of the instance that has it.
    public: BTreeMap<(String, IpAddr), IpAddr>,
    /// (VPC, elastic IP) -> the NAT gateway's private address.
    nat_gateways: BTreeMap<(String, IpAddr), IpAddr>,
}

fn eni_name(vpc: &str, name: &str) -> String {
    format!("eni-{vpc}-{name}")
}

impl Names {
    /// From the definition and the ifindex of each interface it names.
    pub fn new(config: &ValidatedConfig, ifindexes: &BTreeMap<String, u32>) -> Self {
        let mut names = Self::default();
        for (name, role) in config.interfaces() {
            let Some(&ifindex) = ifindexes.get(name) else {
                continue;
            };
            let (v, subnet) = match role {
                InterfaceRole::Port { vpc, instance } => {
                    (vpc, Some(config.vpcs[vpc].instances[instance].subnet))
                }
                InterfaceRole::Segment { vpc, subnet } => (vpc, Some(subnet)),
                InterfaceRole::Uplink { vpc } | InterfaceRole::Gateway { vpc, .. } => (vpc, None),
            };
            let vpc = &config.vpcs[v];
            names.ifaces.entry(ifindex).or_insert(RouterIface {
                name: name.to_owned(),
                vpc: vpc.name.clone(),
                subnet: subnet.map(|s| vpc.subnets[s].name.clone()),
            });
        }
        for vpc in &config.vpcs {
            for i in &vpc.instances {
                if let Some(public) = i.public_ip {
                    names
                        .public
                        .insert((vpc.name.clone(), public.into()), i.private_ip.into());
                }
            }
            for n in &vpc.nat_gateways {
                names
                    .nat_gateways
                    .insert((vpc.name.clone(), n.elastic_ip.into()), n.private_ip.into());
            }
            // An instance's ENI by its private IPv4 address and by each of its IPv6 ones.
            let instances = vpc.instances.iter().map(|i| {
                let ips = std::iter::once(IpAddr::from(i.private_ip))
                    .chain(i.ipv6_addresses.iter().map(|&a| IpAddr::from(a)));
                (&i.name, i.subnet, ips.collect::<Vec<_>>(), true)
            });
            let nats = vpc
                .nat_gateways
                .iter()
                .map(|n| (&n.name, n.subnet, vec![IpAddr::from(n.private_ip)], false));
            for (name, subnet, ips, instance) in instances.chain(nats) {
                let subject = Subject {
                    interface_id: eni_name(&vpc.name, name),
                    vpc: Some(vpc.name.clone()),
                    subnet: vpc.subnets.get(subnet).map(|s| s.name.clone()),
                    instance: instance.then(|| name.clone()),
                };
                for ip in ips {
                    names.enis.insert((vpc.name.clone(), ip), subject.clone());
                }
            }
        }
        names
    }

    /// ifindex -> interface name.
    pub fn interfaces(&self) -> BTreeMap<u32, String> {
        self.ifaces
            .iter()
            .map(|(i, f)| (*i, f.name.clone()))
            .collect()
    }

    fn router_subject(&self, ifindex: u32) -> Subject {
        match self.ifaces.get(&ifindex) {
            Some(f) => Subject {
                interface_id: f.name.clone(),
                vpc: Some(f.vpc.clone()),
                subnet: f.subnet.clone(),
                instance: None,
            },
            None => Subject {
                interface_id: format!("if{ifindex}"),
                vpc: None,
                subnet: None,
                instance: None,
            },
        }
    }

    /// The ENI of `ip` behind subnet interface `ifindex`.
    fn eni(&self, ifindex: u32, ip: IpAddr) -> Option<&Subject> {
        let iface = self.ifaces.get(&ifindex)?;
        iface.subnet.as_ref()?;
        let eni = self.enis.get(&(iface.vpc.clone(), ip))?;
        (eni.subnet == iface.subnet).then_some(eni)
    }

    /// The ENI a packet to `dst` (private or public) arriving on `ifindex` is for, with the
    /// private address it has there.
    fn destination_eni(&self, ifindex: u32, dst: IpAddr) -> Option<(&Subject, IpAddr)> {
        let iface = self.ifaces.get(&ifindex)?;
        let private = self
            .public
            .get(&(iface.vpc.clone(), dst))
            .copied()
            .unwrap_or(dst);
        Some((self.enis.get(&(iface.vpc.clone(), private))?, private))
    }

    /// The ENI and private address of the NAT gateway with elastic IP `eip` in the VPC of
    /// `ifindex`.
    fn nat_gateway(&self, ifindex: u32, eip: IpAddr) -> Option<(&Subject, IpAddr)> {
        let iface = self.ifaces.get(&ifindex)?;
        let private = *self.nat_gateways.get(&(iface.vpc.clone(), eip))?;
        Some((self.enis.get(&(iface.vpc.clone(), private))?, private))
    }

    fn is_uplink(&self, ifindex: u32) -> bool {
        self.ifaces
            .get(&ifindex)
            .is_some_and(|f| f.subnet.is_none())
    }

    /// Every subject that gets NODATA when it had no traffic: ENIs and uplinks.
    fn subjects(&self) -> BTreeSet<Subject> {
        let uplinks = self
            .ifaces
            .iter()
            .filter(|(_, f)| f.subnet.is_none())
            .map(|(i, _)| self.router_subject(*i));
        self.enis.values().cloned().chain(uplinks).collect()
    }
}

/// Whether a drop reason is the destination's inbound rules (its ENI sees the REJECT).
fn rejected_inbound(reason: u32) -> bool {
    matches!(
        DropReason::from_u32(reason),
        Some(DropReason::AclInbound | DropReason::SecurityGroupInbound)
    )
}

/// Whether a drop is a security group's or network ACL's: the only REJECT flow logs record
/// (AWS: "not permitted by the security groups or network ACLs"). Other drops (no route,
/// spoofed, malformed, ...) are in the drop counters and `vpc-agent flows`, not flow logs.
fn rejected_by_rules(reason: u32) -> bool {
    rejected_inbound(reason)
        || matches!(
            DropReason::from_u32(reason),
            Some(DropReason::AclOutbound | DropReason::SecurityGroupOutbound)
        )
}

/// Converts `bpf_ktime_get_ns` values (CLOCK_MONOTONIC) to Unix seconds.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    mono_ns: u64,
    unix_ns: u64,
}

impl Clock {
    pub fn now() -> Self {
        let unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self {
            mono_ns: monotonic_ns(),
            unix_ns,
        }
    }

    /// Unix nanoseconds of a monotonic timestamp.
    fn unix_ns(&self, mono_ns: u64) -> u64 {
        self.unix_ns
            .saturating_sub(self.mono_ns.saturating_sub(mono_ns))
    }

    /// Unix seconds of a monotonic timestamp.
    pub fn unix_secs(&self, mono_ns: u64) -> u64 {
        self.unix_ns(mono_ns) / 1_000_000_000
    }

    /// Unix milliseconds of a monotonic timestamp.
    pub fn unix_ms(&self, mono_ns: u64) -> u64 {
        self.unix_ns(mono_ns) / 1_000_000
    }

    pub fn mono_ns(&self) -> u64 {
        self.mono_ns
    }

    pub fn unix_now_secs(&self) -> u64 {
        self.unix_ns / 1_000_000_000
    }
}

/// CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns`, in ns.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// The records of one drained interval `[start, end]` (Unix seconds), sorted.
pub fn records(
    names: &Names,
    drained: &Drained,
    clock: &Clock,
    start: u64,
    end: u64,
) -> Vec<Record> {
    let mut out: Vec<(Subject, Traffic, u64, u64)> = Vec::new();
    for (key, stats) in &drained.flows {
        let first = clock.unix_secs(stats.first_ns);
        let last = clock.unix_secs(stats.last_ns);
        for (subject, traffic) in sides(names, key, stats) {
            out.push((subject, traffic, first, last));
        }
    }
    let mut seen: BTreeSet<Subject> = BTreeSet::new();
    let mut records: Vec<Record> = out
        .into_iter()
        .map(|(subject, traffic, first, last)| {
            seen.insert(subject.clone());
            record(subject, Some(traffic), first, last, LogStatus::Ok)
        })
        .collect();
    for subject in names.subjects().difference(&seen) {
        records.push(record(subject.clone(), None, start, end, LogStatus::NoData));
    }
    for ifindex in drained.skipped.keys() {
        let subject = names.router_subject(*ifindex);
        records.push(record(subject, None, start, end, LogStatus::SkipData));
    }
    if drained.errors > 0 {
        let subject = Subject {
            interface_id: "-".into(),
            vpc: None,
            subnet: None,
            instance: None,
        };
        records.push(record(subject, None, start, end, LogStatus::SkipData));
    }
    records
}

fn record(
    subject: Subject,
    traffic: Option<Traffic>,
    start: u64,
    end: u64,
    status: LogStatus,
) -> Record {
    Record {
        account_id: ACCOUNT_ID.to_owned(),
        interface_id: subject.interface_id,
        vpc_id: subject.vpc,
        subnet_id: subject.subnet,
        instance_id: subject.instance,
        start,
        end,
        status,
        traffic,
    }
}

/// The records one kernel flow entry gives (see the module documentation).
fn sides(names: &Names, key: &FlowKey<IpAddr>, stats: &FlowStats) -> Vec<(Subject, Traffic)> {
    let ports = matches!(key.proto, PROTO_TCP | PROTO_UDP);
    let accepted = key.action == FLOW_ACCEPT;
    let (src, dst) = (key.src, key.dst);
    let mut out = Vec::new();
    if !accepted && !rejected_by_rules(stats.reason) {
        return out;
    }
    let traffic = |srcaddr, dstaddr, direction, path| Traffic {
        srcaddr,
        dstaddr,
        srcport: Some(if ports { key.sport } else { 0 }),
        dstport: Some(if ports { key.dport } else { 0 }),
        protocol: key.proto,
        packets: stats.packets,
        bytes: stats.bytes,
        accepted,
        direction,
        pkt_srcaddr: src,
        pkt_dstaddr: dst,
        tcp_flags: (key.proto == PROTO_TCP).then_some(stats.tcp_flags),
        traffic_path: path,
    };
    let path = if accepted && names.is_uplink(stats.out_ifindex) {
        Some(8)
    } else {
        Some(1)
    };
    // The source side: the sending ENI's egress, or the router interface's ingress.
    let source = names.eni(key.ifindex, src);
    match source {
        Some(eni) if !accepted && rejected_inbound(stats.reason) => {
            // The sender's own rules let it out: its ENI records ACCEPT, as in AWS.
            let allowed = Traffic {
                accepted: true,
                ..traffic(src, dst, Direction::Egress, path)
            };
            out.push((eni.clone(), allowed));
        }
        Some(eni) => out.push((eni.clone(), traffic(src, dst, Direction::Egress, path))),
        None => out.push((
            names.router_subject(key.ifindex),
            traffic(src, dst, Direction::Ingress, None),
        )),
    }
    if !accepted {
        // The destination's inbound rules rejected it: its ENI records the REJECT, with its
        // private address (traffic from the internet is addressed to the public one).
        if rejected_inbound(stats.reason)
            && let Some((eni, private)) = names.destination_eni(key.ifindex, dst)
        {
            out.push((eni.clone(), traffic(src, private, Direction::Ingress, None)));
        }
        return out;
    }
    if stats.out_ifindex == 0 {
        return out;
    }
    let (psrc, pdst) = drain::packet_addrs(key, stats);
    // Through a NAT gateway (AWS "traffic through a NAT gateway"): its ENI sees the packet
    // come in and go out, once towards the internet, once back towards the instance.
    let outbound_nat = (psrc != src)
        .then(|| names.nat_gateway(key.ifindex, psrc))
        .flatten();
    let inbound_nat = (pdst != dst)
        .then(|| names.nat_gateway(key.ifindex, dst))
        .flatten();
    if let Some((nat, private)) = outbound_nat {
        let ingress = Traffic {
            pkt_dstaddr: dst,
            ..traffic(src, private, Direction::Ingress, None)
        };
        let egress = Traffic {
            pkt_srcaddr: private,
            ..traffic(private, dst, Direction::Egress, Some(8))
        };
        out.push((nat.clone(), ingress));
        out.push((nat.clone(), egress));
    }
    if let Some((nat, private)) = inbound_nat {
        let ingress = Traffic {
            pkt_dstaddr: private,
            ..traffic(src, private, Direction::Ingress, None)
        };
        let egress = Traffic {
            pkt_dstaddr: pdst,
            ..traffic(private, pdst, Direction::Egress, Some(1))
        };
        out.push((nat.clone(), ingress));
        out.push((nat.clone(), egress));
    }
    if let Some(eni) = names.eni(stats.out_ifindex, pdst) {
        out.push((eni.clone(), traffic(psrc, pdst, Direction::Ingress, None)));
    } else if names.is_uplink(stats.out_ifindex) {
        let subject = names.router_subject(stats.out_ifindex);
        out.push((subject, traffic(psrc, pdst, Direction::Egress, Some(8))));
    }
    out
}

/// Where records go.
enum Sink {
    Stdout,
    File(File),
    Ipfix(ipfix::Exporter),
}

/// One flow log: where, in which format, which traffic of which resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSettings {
    pub destination: FlowLogDestination,
    pub fields: Vec<String>,
    pub traffic_type: TrafficType,
    pub scope: FlowLogScope,
}

impl LogSettings {
    /// Whether `record` belongs in this log (NODATA/SKIPDATA: of every traffic type).
    pub fn covers(&self, record: &Record) -> bool {
        let traffic = match (self.traffic_type, &record.traffic) {
            (TrafficType::All, _) | (_, None) => true,
            (TrafficType::Accept, Some(t)) => t.accepted,
            (TrafficType::Reject, Some(t)) => !t.accepted,
        };
        let is = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        let s = &self.scope;
        traffic
            && is(&s.vpc, &record.vpc_id)
            && is(&s.subnet, &record.subnet_id)
            && is(&s.instance, &record.instance_id)
    }

    /// Whether a kernel flow entry belongs in this log's IPFIX export (by traffic type).
    fn covers_flow(&self, key: &FlowKey<IpAddr>) -> bool {
        match self.traffic_type {
            TrafficType::All => true,
            TrafficType::Accept => key.action == FLOW_ACCEPT,
            TrafficType::Reject => key.action != FLOW_ACCEPT,
        }
    }

    /// `destination=... traffic_type=... scope=... fields=N`, for the log.
    pub fn describe(&self) -> String {
        let s = &self.scope;
        let scope = match (&s.vpc, &s.subnet, &s.instance) {
            (_, Some(subnet), _) => format!("subnet:{subnet}"),
            (_, _, Some(instance)) => format!("instance:{instance}"),
            (Some(vpc), _, _) => format!("vpc:{vpc}"),
            _ => "all".to_owned(),
        };
        format!(
            "destination={} traffic_type={:?} scope={scope} fields={}",
            describe_destination(&self.destination),
            self.traffic_type,
            self.fields.len()
        )
    }
}

/// `stdout`, `file:PATH`, `ipfix:HOST:PORT`.
pub fn describe_destination(d: &FlowLogDestination) -> String {
    match d {
        FlowLogDestination::Stdout => "stdout".to_owned(),
        FlowLogDestination::File(p) => format!("file:{}", p.display()),
        FlowLogDestination::Ipfix { host, port } => format!("ipfix:{host}:{port}"),
    }
}

/// The flow log settings in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub interval: Duration,
    /// Empty: the definition has no flow logs and no `--flow-log` was given (the counters
    /// are still drained, so that the map does not fill up).
    pub logs: Vec<LogSettings>,
}

impl Settings {
    /// From the definition; `--flow-log` replaces its logs by one of everything (in the
    /// first log's format), the interval override its interval.
    pub fn resolve(
        config: &ValidatedConfig,
        destination: Option<&FlowLogDestination>,
        interval_override: Option<Duration>,
    ) -> Self {
        let first = config.flow_logs.first();
        let secs = first.map_or(DEFAULT_AGGREGATION_INTERVAL, |f| f.aggregation_interval);
        let logs = match destination {
            Some(d) => vec![LogSettings {
                destination: d.clone(),
                fields: first.map_or_else(
                    || DEFAULT_FLOW_LOG_FIELDS.map(str::to_owned).to_vec(),
                    |f| f.fields.clone(),
                ),
                traffic_type: TrafficType::All,
                scope: FlowLogScope::default(),
            }],
            None => config
                .flow_logs
                .iter()
                .map(|f| LogSettings {
                    destination: f.destination.clone(),
                    fields: f.fields.clone(),
                    traffic_type: f.traffic_type,
                    scope: f.scope.clone(),
                })
                .collect(),
        };
        Self {
            interval: interval_override.unwrap_or(Duration::from_secs(u64::from(secs))),
            logs,
        }
    }
}

/// The flow log writer of the daemon.
pub struct FlowLog {
    pub settings: Settings,
    /// One per log of `settings`.
    sinks: Vec<Sink>,
    pub names: Names,
    /// Unix seconds of the start of the current interval.
    interval_start: u64,
    pub counters: FlowLogCounters,
}

impl FlowLog {
    pub fn new(settings: Settings, names: Names) -> Result<Self, FlowLogError> {
        let sinks = settings
            .logs
            .iter()
            .map(|l| open(&l.destination))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            settings,
            sinks,
            names,
            interval_start: Clock::now().unix_now_secs(),
            counters: FlowLogCounters::default(),
        })
    }

    /// Reopens the file destinations (SIGHUP: logrotate moved the files away).
    pub fn reopen(&mut self) -> Result<(), FlowLogError> {
        for (sink, log) in self.sinks.iter_mut().zip(&self.settings.logs) {
            if matches!(sink, Sink::File(_)) {
                *sink = open(&log.destination)?;
            }
        }
        Ok(())
    }

    /// New settings (a reload): a destination that stays keeps its sink, others are opened
    /// first (if one cannot be, nothing changes).
    pub fn reconfigure(&mut self, settings: Settings, names: Names) -> Result<(), FlowLogError> {
        let mut claimed = vec![false; self.sinks.len()];
        let mut plan: Vec<Result<usize, Sink>> = Vec::with_capacity(settings.logs.len());
        for log in &settings.logs {
            let keep = self
                .settings
                .logs
                .iter()
                .enumerate()
                .position(|(i, old)| !claimed[i] && old.destination == log.destination);
            match keep {
                Some(i) => {
                    claimed[i] = true;
                    plan.push(Ok(i));
                }
                None => plan.push(Err(open(&log.destination)?)),
            }
        }
        let mut old: Vec<Option<Sink>> = self.sinks.drain(..).map(Some).collect();
        self.sinks = plan
            .into_iter()
            .filter_map(|p| match p {
                Ok(i) => old[i].take(),
                Err(sink) => Some(sink),
            })
            .collect();
        self.settings = settings;
        self.names = names;
        Ok(())
    }

    /// Ends the interval: writes the records of what was drained to every log. Returns the
    /// records written; the first failure (with how many records were lost) is an error.
    pub fn emit(&mut self, drained: &Drained) -> Result<usize, FlowLogError> {
        let clock = Clock::now();
        let end = clock.unix_now_secs();
        let records = records(&self.names, drained, &clock, self.interval_start, end);
        self.interval_start = end;
        let c = &mut self.counters;
        c.drains += 1;
        c.last_drain_flows = drained.flows.len() as u64;
        c.last_drain_micros = drained.elapsed.as_micros() as u64;
        c.packets_skipped += drained.skipped.values().sum::<u64>() + drained.errors;
        for (key, stats) in &drained.flows {
            if key.action == FLOW_ACCEPT {
                c.accepted_packets += stats.packets;
                c.accepted_bytes += stats.bytes;
            } else {
                c.rejected_packets += stats.packets;
                c.rejected_bytes += stats.bytes;
            }
        }
        let mut total = 0;
        let mut failure = None;
        for (sink, log) in self.sinks.iter_mut().zip(&self.settings.logs) {
            let (written, lost, error) = match sink {
                Sink::Ipfix(exporter) => exporter.export(
                    drained
                        .flows
                        .iter()
                        .filter(|(k, _)| log.covers_flow(k))
                        .map(|(k, s)| (k, s)),
                    &clock,
                ),
                Sink::Stdout | Sink::File(_) => {
                    let mine: Vec<&Record> = records.iter().filter(|r| log.covers(r)).collect();
                    let lines: Vec<String> =
                        mine.iter().map(|r| r.format(&log.fields) + "\n").collect();
                    let result = match sink {
                        Sink::File(f) => write_whole(f, &lines),
                        _ => write_whole(&mut StdoutSink(io::stdout().lock()), &lines),
                    };
                    let (written, error) = match result {
                        Ok(n) => (n, None),
                        Err((n, e)) => (n, Some(e)),
                    };
                    c.skipdata_records += mine[..written]
                        .iter()
                        .filter(|r| r.status == LogStatus::SkipData)
                        .count() as u64;
                    (written, lines.len() - written, error)
                }
            };
            total += written;
            c.records_written += written as u64;
            c.records_lost += lost as u64;
            if let Some(source) = error
                && failure.is_none()
            {
                failure = Some(FlowLogError::Lost {
                    destination: describe_destination(&log.destination),
                    lost,
                    source,
                });
            }
        }
        match failure {
            None => Ok(total),
            Some(e) => Err(e),
        }
    }
}

/// A destination that can take back a partly written chunk.
trait RecordSink: io::Write {
    /// Where the next write lands.
    fn position(&mut self) -> io::Result<u64>;
    /// Drops everything written after `position` (a no-op where that cannot be done).
    fn cut(&mut self, position: u64) -> io::Result<()>;
}

impl RecordSink for File {
    fn position(&mut self) -> io::Result<u64> {
        // Append mode: writes land at the end.
        Ok(self.metadata()?.len())
    }

    fn cut(&mut self, position: u64) -> io::Result<()> {
        self.set_len(position)
    }
}

struct StdoutSink<'a>(io::StdoutLock<'a>);

impl io::Write for StdoutSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl RecordSink for StdoutSink<'_> {
    fn position(&mut self) -> io::Result<u64> {
        Ok(0)
    }

    fn cut(&mut self, _: u64) -> io::Result<()> {
        Ok(())
    }
}

/// Largest chunk of whole records written at once.
const CHUNK: usize = 64 * 1024;

/// Writes `lines` (each a whole record with its newline) in chunks of whole records; when a
/// chunk fails (ENOSPC, EFBIG, ...) the part of it that was written is cut off again, so that
/// the destination never holds half a record. Returns how many records are in the
/// destination, with the error if not all are.
fn write_whole(sink: &mut dyn RecordSink, lines: &[String]) -> Result<usize, (usize, io::Error)> {
    let mut done = 0;
    while done < lines.len() {
        let mut end = done;
        let mut chunk = String::new();
        while end < lines.len() && (end == done || chunk.len() + lines[end].len() <= CHUNK) {
            chunk.push_str(&lines[end]);
            end += 1;
        }
        let start = sink.position().map_err(|e| (done, e))?;
        if let Err(e) = sink.write_all(chunk.as_bytes()).and_then(|()| sink.flush()) {
            if let Err(cut) = sink.cut(start) {
                log::error!("flow log: cannot cut off a partly written chunk: {cut}");
            }
            return Err((done, e));
        }
        done = end;
    }
    Ok(done)
}

fn open(destination: &FlowLogDestination) -> Result<Sink, FlowLogError> {
    Ok(match destination {
        FlowLogDestination::Stdout => Sink::Stdout,
        FlowLogDestination::File(path) => Sink::File(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| FlowLogError::Open {
                    path: path.clone(),
                    source,
                })?,
        ),
        FlowLogDestination::Ipfix { host, port } => {
            Sink::Ipfix(ipfix::Exporter::new(host, *port).map_err(|source| {
                FlowLogError::Collector {
                    destination: describe_destination(destination),
                    source,
                }
            })?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpc_common::{DropReason, flow::FLOW_REJECT, ip_raw};

    /// Subnets a, b, an uplink, a NAT gateway, instances ha (with a public address) and hb.
    const YAML: &str = include_str!("../../tests/fixtures/flowlog.yaml");

    fn names() -> Names {
        let config = crate::config::load_str("t.yaml", YAML).expect("valid");
        let ifindexes = [("da", 2), ("db", 3), ("up", 4)]
            .map(|(n, i)| (n.to_owned(), i))
            .into_iter()
            .collect();
        Names::new(&config, &ifindexes)
    }

    fn key(ifindex: u32, src: [u8; 4], dst: [u8; 4], proto: u8, action: u8) -> FlowKey<IpAddr> {
        FlowKey {
            ifindex,
            src: src.into(),
            dst: dst.into(),
            sport: 40000,
            dport: 80,
            proto,
            action,
            generation: 0,
            _pad: 0,
        }
    }

    fn lines(drained: &Drained) -> Vec<String> {
        let clock = Clock {
            mono_ns: 100_000_000_000,
            unix_ns: 1_700_000_100_000_000_000,
        };
        let fields = [
            "interface-id",
            "srcaddr",
            "dstaddr",
            "srcport",
            "packets",
            "start",
            "end",
            "action",
            "log-status",
            "flow-direction",
            "pkt-dstaddr",
        ]
        .map(str::to_owned);
        records(&names(), drained, &clock, 1_700_000_000, 1_700_000_100)
            .iter()
            .map(|r| r.format(&fields))
            .collect()
    }

    #[test]
    fn an_accepted_flow_is_seen_by_both_enis_and_idle_ones_get_nodata() {
        let stats = FlowStats {
            packets: 3,
            bytes: 180,
            first_ns: 40_000_000_000,
            last_ns: 42_500_000_000,
            out_ifindex: 3,
            pkt_src: ip_raw([10, 30, 1, 10]),
            pkt_dst: ip_raw([10, 30, 2, 10]),
            ..FlowStats::default()
        };
        let drained = Drained {
            flows: vec![(
                key(2, [10, 30, 1, 10], [10, 30, 2, 10], PROTO_TCP, FLOW_ACCEPT),
                stats,
            )],
            ..Drained::default()
        };
        assert_eq!(
            lines(&drained),
            [
                "eni-v-ha 10.30.1.10 10.30.2.10 40000 3 1700000040 1700000042 ACCEPT OK egress 10.30.2.10",
                "eni-v-hb 10.30.1.10 10.30.2.10 40000 3 1700000040 1700000042 ACCEPT OK ingress 10.30.2.10",
                "eni-v-nat - - - - 1700000000 1700000100 - NODATA - -",
                "up - - - - 1700000000 1700000100 - NODATA - -",
            ]
        );
    }

    /// An IPv6 key (ports 40000 -> 80).
    fn key6(ifindex: u32, src: &str, dst: &str, action: u8) -> FlowKey<IpAddr> {
        FlowKey {
            src: src.parse().expect("IPv6"),
            dst: dst.parse().expect("IPv6"),
            ..key(ifindex, [0; 4], [0; 4], PROTO_TCP, action)
        }
    }

    #[test]
    fn ipv6_flows_are_recorded_with_their_addresses() {
        // ha -> hb (accepted), ha -> the internet through the internet gateway (untranslated:
        // the kernel records no packet addresses), and the internet -> hb rejected by its
        // security group.
        let sent = |out| FlowStats {
            packets: 3,
            bytes: 240,
            first_ns: 40_000_000_000,
            last_ns: 42_500_000_000,
            out_ifindex: out,
            ..FlowStats::default()
        };
        let denied = FlowStats {
            reason: DropReason::SecurityGroupInbound as u32,
            ..sent(0)
        };
        let drained = Drained {
            flows: vec![
                (
                    key6(2, "2001:db8:30:1::10", "2001:db8:30:2::10", FLOW_ACCEPT),
                    sent(3),
                ),
                (
                    key6(2, "2001:db8:30:1::10", "2001:db8:ff::1", FLOW_ACCEPT),
                    sent(4),
                ),
                (
                    key6(4, "2001:db8:ff::1", "2001:db8:30:2::10", FLOW_REJECT),
                    denied,
                ),
            ],
            ..Drained::default()
        };
        assert_eq!(
            lines(&drained),
            [
                "eni-v-ha 2001:db8:30:1::10 2001:db8:30:2::10 40000 3 1700000040 1700000042 ACCEPT OK egress 2001:db8:30:2::10",
                "eni-v-hb 2001:db8:30:1::10 2001:db8:30:2::10 40000 3 1700000040 1700000042 ACCEPT OK ingress 2001:db8:30:2::10",
                "eni-v-ha 2001:db8:30:1::10 2001:db8:ff::1 40000 3 1700000040 1700000042 ACCEPT OK egress 2001:db8:ff::1",
                "up 2001:db8:30:1::10 2001:db8:ff::1 40000 3 1700000040 1700000042 ACCEPT OK egress 2001:db8:ff::1",
                "up 2001:db8:ff::1 2001:db8:30:2::10 40000 3 1700000040 1700000042 REJECT OK ingress 2001:db8:30:2::10",
                "eni-v-hb 2001:db8:ff::1 2001:db8:30:2::10 40000 3 1700000040 1700000042 REJECT OK ingress 2001:db8:30:2::10",
                "eni-v-nat - - - - 1700000000 1700000100 - NODATA - -",
            ]
        );
        // The AWS `type` field and the packet addresses of a version 5 format.
        let clock = Clock {
            mono_ns: 100_000_000_000,
            unix_ns: 1_700_000_100_000_000_000,
        };
        let fields = [
            "interface-id",
            "type",
            "pkt-srcaddr",
            "pkt-dstaddr",
            "traffic-path",
        ]
        .map(str::to_owned);
        let first = records(&names(), &drained, &clock, 1_700_000_000, 1_700_000_100);
        assert_eq!(
            first[2].format(&fields),
            "eni-v-ha IPv6 2001:db8:30:1::10 2001:db8:ff::1 8"
        );
    }

    #[test]
    fn translated_and_rejected_flows_and_skipdata() {
        // From the internet to ha's public address: the uplink's ingress, ha's ENI sees the
        // private destination.
        let inbound = FlowStats {
            packets: 1,
            bytes: 60,
            first_ns: 50_000_000_000,
            last_ns: 50_000_000_000,
            out_ifindex: 2,
            pkt_src: ip_raw([203, 0, 113, 50]),
            pkt_dst: ip_raw([10, 30, 1, 10]),
            ..FlowStats::default()
        };
        let denied = FlowStats {
            packets: 2,
            bytes: 168,
            first_ns: 60_000_000_000,
            last_ns: 61_000_000_000,
            reason: DropReason::AclInbound as u32,
            ..FlowStats::default()
        };
        let drained = Drained {
            flows: vec![
                (
                    key(
                        4,
                        [203, 0, 113, 50],
                        [198, 51, 100, 10],
                        PROTO_UDP,
                        FLOW_ACCEPT,
                    ),
                    inbound,
                ),
                (
                    key(2, [10, 30, 1, 10], [10, 30, 2, 10], 1, FLOW_REJECT),
                    denied,
                ),
            ],
            skipped: [(3, 17)].into_iter().collect(),
            ..Drained::default()
        };
        assert_eq!(
            lines(&drained),
            [
                "up 203.0.113.50 198.51.100.10 40000 1 1700000050 1700000050 ACCEPT OK ingress 198.51.100.10",
                "eni-v-ha 203.0.113.50 10.30.1.10 40000 1 1700000050 1700000050 ACCEPT OK ingress 198.51.100.10",
                // The sender's rules let it out (ACCEPT egress), hb's ACL rejects it.
                "eni-v-ha 10.30.1.10 10.30.2.10 0 2 1700000060 1700000061 ACCEPT OK egress 10.30.2.10",
                "eni-v-hb 10.30.1.10 10.30.2.10 0 2 1700000060 1700000061 REJECT OK ingress 10.30.2.10",
                "eni-v-nat - - - - 1700000000 1700000100 - NODATA - -",
                "db - - - - 1700000000 1700000100 - SKIPDATA - -",
            ]
        );
    }

    fn stats(packets: u64, reason: Option<DropReason>, out: u32, pkt: [[u8; 4]; 2]) -> FlowStats {
        FlowStats {
            packets,
            bytes: packets * 60,
            first_ns: 50_000_000_000,
            last_ns: 50_000_000_000,
            out_ifindex: out,
            pkt_src: ip_raw(pkt[0]),
            pkt_dst: ip_raw(pkt[1]),
            reason: reason.map_or(0, |r| r as u32),
            ..FlowStats::default()
        }
    }

    #[test]
    fn rejected_internet_traffic_is_on_the_instance_eni_and_other_drops_are_not_logged() {
        let drained = Drained {
            flows: vec![
                (
                    key(
                        4,
                        [203, 0, 113, 50],
                        [198, 51, 100, 10],
                        PROTO_TCP,
                        FLOW_REJECT,
                    ),
                    stats(2, Some(DropReason::SecurityGroupInbound), 0, [[0; 4]; 2]),
                ),
                (
                    key(2, [10, 30, 1, 10], [10, 99, 0, 1], PROTO_TCP, FLOW_REJECT),
                    stats(5, Some(DropReason::NoRoute), 0, [[0; 4]; 2]),
                ),
            ],
            ..Drained::default()
        };
        assert_eq!(
            lines(&drained),
            [
                "up 203.0.113.50 198.51.100.10 40000 2 1700000050 1700000050 REJECT OK ingress 198.51.100.10",
                "eni-v-ha 203.0.113.50 10.30.1.10 40000 2 1700000050 1700000050 REJECT OK ingress 198.51.100.10",
                "eni-v-hb - - - - 1700000000 1700000100 - NODATA - -",
                "eni-v-nat - - - - 1700000000 1700000100 - NODATA - -",
            ]
        );
    }

    #[test]
    fn traffic_through_a_nat_gateway_is_on_its_eni_both_ways() {
        let fields = [
            "interface-id",
            "srcaddr",
            "dstaddr",
            "pkt-srcaddr",
            "pkt-dstaddr",
            "flow-direction",
        ]
        .map(str::to_owned);
        let clock = Clock {
            mono_ns: 100_000_000_000,
            unix_ns: 1_700_000_100_000_000_000,
        };
        let drained = Drained {
            flows: vec![
                // hb -> the internet, translated to the gateway's elastic IP.
                (
                    key(3, [10, 30, 2, 10], [203, 0, 113, 5], PROTO_TCP, FLOW_ACCEPT),
                    stats(1, None, 4, [[198, 51, 100, 5], [203, 0, 113, 5]]),
                ),
                // The reply, to the elastic IP, translated back to hb.
                (
                    FlowKey {
                        sport: 80,
                        dport: 40000,
                        ..key(
                            4,
                            [203, 0, 113, 5],
                            [198, 51, 100, 5],
                            PROTO_TCP,
                            FLOW_ACCEPT,
                        )
                    },
                    stats(1, None, 3, [[203, 0, 113, 5], [10, 30, 2, 10]]),
                ),
            ],
            ..Drained::default()
        };
        let lines: Vec<String> = records(&names(), &drained, &clock, 1_700_000_000, 1_700_000_100)
            .iter()
            .filter(|r| r.status == LogStatus::Ok)
            .map(|r| r.format(&fields))
            .collect();
        // As AWS's "traffic through a NAT gateway" example (the uplink's own records too).
        assert_eq!(
            lines,
            [
                "eni-v-hb 10.30.2.10 203.0.113.5 10.30.2.10 203.0.113.5 egress",
                "eni-v-nat 10.30.2.10 10.30.1.5 10.30.2.10 203.0.113.5 ingress",
                "eni-v-nat 10.30.1.5 203.0.113.5 10.30.1.5 203.0.113.5 egress",
                "up 198.51.100.5 203.0.113.5 10.30.2.10 203.0.113.5 egress",
                "up 203.0.113.5 198.51.100.5 203.0.113.5 198.51.100.5 ingress",
                "eni-v-nat 203.0.113.5 10.30.1.5 203.0.113.5 10.30.1.5 ingress",
                "eni-v-nat 10.30.1.5 10.30.2.10 203.0.113.5 10.30.2.10 egress",
                "eni-v-hb 203.0.113.5 10.30.2.10 203.0.113.5 198.51.100.5 ingress",
            ]
        );
    }

    /// A file that takes `room` more bytes, then fails like a full disk.
    struct Full {
        data: Vec<u8>,
        room: usize,
    }

    impl io::Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = buf.len().min(self.room);
            self.data.extend_from_slice(&buf[..n]);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl RecordSink for Full {
        fn position(&mut self) -> io::Result<u64> {
            Ok(self.data.len() as u64)
        }

        fn cut(&mut self, position: u64) -> io::Result<()> {
            self.data.truncate(position as usize);
            Ok(())
        }
    }

    #[test]
    fn a_full_disk_keeps_whole_records_and_counts_the_lost_ones() {
        // 3000 records of 40 bytes: two full chunks (1638 records each would exceed 3000),
        // the disk fills in the middle of the second chunk.
        let lines: Vec<String> = (0..3000).map(|i| format!("{i:039}\n")).collect();
        let mut sink = Full {
            data: Vec::new(),
            room: CHUNK + 1000,
        };
        let (written, e) = write_whole(&mut sink, &lines).expect_err("disk full");
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(written, CHUNK / 40);
        assert_eq!(sink.data.len(), written * 40, "no partial chunk stays");
        assert!(sink.data.ends_with(b"\n"));
        let mut sink = Full {
            data: Vec::new(),
            room: usize::MAX,
        };
        assert_eq!(write_whole(&mut sink, &lines).ok(), Some(3000));
        assert_eq!(sink.data.len(), 3000 * 40);
    }

    #[test]
    fn logs_take_their_traffic_type_and_scope() {
        let accepted = stats(3, None, 3, [[10, 30, 1, 10], [10, 30, 2, 10]]);
        let drained = Drained {
            flows: vec![
                (
                    key(2, [10, 30, 1, 10], [10, 30, 2, 10], PROTO_TCP, FLOW_ACCEPT),
                    accepted,
                ),
                (
                    key(2, [10, 30, 1, 10], [10, 30, 2, 10], PROTO_UDP, FLOW_REJECT),
                    stats(1, Some(DropReason::SecurityGroupInbound), 0, [[0; 4]; 2]),
                ),
            ],
            ..Drained::default()
        };
        let clock = Clock {
            mono_ns: 100_000_000_000,
            unix_ns: 1_700_000_100_000_000_000,
        };
        let all = records(&names(), &drained, &clock, 1_700_000_000, 1_700_000_100);
        let log = |traffic_type, scope| LogSettings {
            destination: FlowLogDestination::Stdout,
            fields: ["interface-id", "protocol", "action", "log-status"]
                .map(str::to_owned)
                .to_vec(),
            traffic_type,
            scope,
        };
        let lines = |l: &LogSettings| -> Vec<String> {
            all.iter()
                .filter(|r| l.covers(r))
                .map(|r| r.format(&l.fields))
                .collect()
        };
        let subnet_b = FlowLogScope {
            vpc: Some("v".into()),
            subnet: Some("b".into()),
            instance: None,
        };
        assert_eq!(
            lines(&log(TrafficType::Reject, FlowLogScope::default())),
            [
                "eni-v-hb 17 REJECT OK",
                "eni-v-nat - - NODATA",
                "up - - NODATA"
            ]
        );
        assert_eq!(
            lines(&log(TrafficType::Accept, subnet_b.clone())),
            ["eni-v-hb 6 ACCEPT OK"]
        );
        assert_eq!(
            lines(&log(TrafficType::All, subnet_b)),
            ["eni-v-hb 6 ACCEPT OK", "eni-v-hb 17 REJECT OK"]
        );
        let ha = FlowLogScope {
            vpc: Some("v".into()),
            subnet: None,
            instance: Some("ha".into()),
        };
        assert_eq!(
            lines(&log(TrafficType::All, ha)),
            ["eni-v-ha 6 ACCEPT OK", "eni-v-ha 17 ACCEPT OK"]
        );
    }

    #[test]
    fn destinations_parse() {
        assert_eq!(
            parse_destination("stdout").ok(),
            Some(FlowLogDestination::Stdout)
        );
        assert_eq!(
            parse_destination("file:/tmp/f.log").ok(),
            Some(FlowLogDestination::File("/tmp/f.log".into()))
        );
        assert!(parse_destination("syslog").is_err());
        assert_eq!(
            parse_destination("ipfix:127.0.0.1:4739").ok(),
            Some(FlowLogDestination::Ipfix {
                host: "127.0.0.1".into(),
                port: 4739
            })
        );
        assert!(parse_destination("ipfix:127.0.0.1").is_err());
        assert!(parse_destination("ipfix:host:0").is_err());
        assert!(parse_destination("file:").is_err());
    }
}
