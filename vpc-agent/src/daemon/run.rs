//! The run loop of the daemon: it loads the datapath with its maps pinned under the bpffs
//! directory (adopting what a previous agent left there), reconciles the maps to the definition
//! *before* attaching (so there is never an allow-all window), attaches through pinned links,
//! and then stays in the foreground:
//!
//! - the definition file is **polled** every [`FILE_POLL`] (content compared; a change is
//!   applied once two consecutive polls read the same) and reloaded on SIGHUP; an invalid file
//!   is reported and the running generation stays; one naming interfaces that do not exist yet
//!   waits for them;
//! - interfaces are **polled** every [`IFACE_POLL`]: one that disappeared and came back (new
//!   ifindex, also a new device under a renamed one's name) gets the running definition
//!   recompiled and the programs re-attached;
//! - every flow log aggregation interval the per-flow counters are **drained** and written as
//!   flow log records ([`crate::flowlog`]); the last, partial interval is flushed on SIGTERM;
//! - every [`SWEEP_INTERVAL`] expired connections are **swept** ([`crate::daemon::sweep`]);
//! - on IPv6 instance ports a router advertisement is **sent** after each apply and every
//!   `--router-advertisement-interval` ([`crate::daemon::advertise`]);
//! - with `--metrics ADDR`, a Prometheus endpoint answers on ADDR ([`crate::inspect::metrics`]);
//! - SIGTERM / SIGINT stop the agent and leave the datapath enforcing (links and maps pinned).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::{Path, PathBuf},
    rc::Rc,
    time::Duration,
};

use tokio::signal::unix::{SignalKind, signal};
use vpc_common::{
    conntrack::{CtKey, CtKey6},
    nat::NatKey,
};

use crate::{
    compile::CompileError,
    compile::{Compiled, Links as _},
    config::{self, LoadError, ValidatedConfig, validated::FlowLogDestination},
    daemon::advertise::{self, Advertiser},
    daemon::guard::{self, GuardError},
    daemon::netconf::{self, Managed, NetconfError},
    daemon::notify,
    daemon::reconcile::{self, Outcome, ReconcileError},
    daemon::sweep::{self, SWEEP_INTERVAL},
    datapath::object::{maps as names, programs},
    datapath::pin::{self, AgentRecord, DirLock, PinError},
    datapath::{AttachMode, Attached, Attachment, Datapath, DatapathError, programs_for},
    flowlog::{self, FlowLog, FlowLogError, Names, Settings},
    links::{self, SystemLinks},
};

/// How often the definition file is checked for changes.
pub const FILE_POLL: Duration = Duration::from_millis(500);
/// How often interfaces are checked (gone, back with a new ifindex).
pub const IFACE_POLL: Duration = Duration::from_secs(1);

/// `vpc-agent run` options.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub config: PathBuf,
    pub bpffs: PathBuf,
    pub xdp_mode: AttachMode,
    /// `--flow-log`: overrides the definition's `flow_logs.destination`.
    pub flow_log: Option<FlowLogDestination>,
    /// Test aid (`--flow-log-interval-ms`): overrides the aggregation interval.
    pub flow_log_interval: Option<Duration>,
    /// `--metrics ADDR`: serve Prometheus metrics there.
    pub metrics: Option<SocketAddr>,
    /// `--router-advertisement-interval`: between unsolicited router advertisements.
    pub router_advertisement_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    #[error("cannot prepare interface {interface}")]
    Netconf {
        interface: String,
        #[source]
        source: NetconfError,
    },
    #[error("interfaces named by the definition are missing: {}", .0.join(", "))]
    MissingInterfaces(Vec<String>),
    #[error(transparent)]
    Guard(#[from] GuardError),
    #[error("cannot start the event loop")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    FlowLog(#[from] FlowLogError),
    #[error("cannot serve metrics on {addr}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl DaemonError {
    /// Exit status (README, "Exit status"): 1 for a problem with the file, 2 for the
    /// environment.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Load(_) => 1,
            Self::Reconcile(ReconcileError::Compile(CompileError::Capacity { .. })) => 1,
            _ => 2,
        }
    }
}

/// The running agent.
struct Agent {
    opts: RunOptions,
    datapath: Datapath,
    /// Pinned links this agent attached or adopted.
    attachments: Vec<Attachment>,
    /// Interfaces of the running generation and the ifindex it was compiled with.
    ifindexes: BTreeMap<String, u32>,
    managed: Vec<Managed>,
    /// The file content of the running definition.
    running: String,
    /// The file's content when it is not the running definition, and what became of it.
    seen: Option<Seen>,
    /// The last error reading the file (reported once, not at every poll).
    read_error: Option<String>,
    flow_log: FlowLog,
    /// What `status` reads back: rewritten when interfaces or counters change.
    record: AgentRecord,
    /// Shared with [`Agent::start`], which cleans up under the lock when starting fails.
    _lock: Rc<DirLock>,
    /// The running generation and whether the last reload was rejected (systemd `STATUS=`).
    generation: u64,
    last_reload_rejected: bool,
    /// NAT translations found without a connection at the last orphan scan (freed if still
    /// so at the next).
    nat_orphans: BTreeSet<NatKey>,
    /// The socket router advertisements are sent from (opened at the first IPv6 port).
    advertiser: Option<Advertiser>,
    /// Sweeps since the daemon started: orphans are looked for every
    /// [`sweep::ORPHAN_SCAN_EVERY`]th.
    sweeps: u64,
}

/// A definition read from the file that is not (yet) the running one.
struct Seen {
    text: String,
    state: Candidate,
}

#[derive(Debug, PartialEq, Eq)]
enum Candidate {
    /// Read once: applied if the next poll reads the same (a file being written is not).
    Settling,
    /// Invalid or failed to apply: reported, not tried again until the file changes or SIGHUP.
    Rejected,
    /// Valid, but names interfaces that do not exist yet: applied when they all appear.
    MissingInterfaces(Vec<String>),
}

fn load_text(path: &Path, text: &str) -> Result<ValidatedConfig, LoadError> {
    Ok(config::load_str(&path.display().to_string(), text)?)
}

fn log_outcome(outcome: &Outcome, what: &str) {
    match outcome {
        Outcome::Unchanged { generation, slot } => log::info!(
            "{what}: definition unchanged, nothing written generation={generation} slot={slot}"
        ),
        Outcome::Applied {
            generation,
            slot,
            stats,
            devices_pruned,
        } => log::info!(
            "{what}: applied generation={generation} slot={slot} written={} removed={} \
             devices_pruned={devices_pruned}",
            stats.written,
            stats.removed
        ),
    }
}

impl Agent {
    fn start(opts: RunOptions) -> Result<Self, DaemonError> {
        let text = config::read_file(&opts.config)?;
        let config = load_text(&opts.config, &text)?;
        // Interfaces first: nothing is created in the kernel for a definition that cannot run.
        let resolved = resolve(&config)?;
        if opts.xdp_mode == AttachMode::Native {
            for name in resolved.keys() {
                if SystemLinks.link(name).is_some_and(|l| l.virtual_device) {
                    let interface = name.clone();
                    return Err(DatapathError::NativeOnVirtual { interface }.into());
                }
            }
        }
        pin::ensure_bpffs(&opts.bpffs)?;
        let lock = Rc::new(pin::lock(&opts.bpffs)?);
        let adopting = pin::map_path(&opts.bpffs, crate::datapath::object::maps::CONFIG).exists();
        let dir = opts.bpffs.clone();
        let started = Self::start_locked(opts, text, &config, resolved, Rc::clone(&lock), adopting);
        if started.is_err() && !adopting {
            // Nothing of ours may outlive a refused start (another agent on the same
            // interfaces from another directory, a verifier failure, ...): the maps and links
            // this agent created are removed with its directory. Adopted ones stay.
            match pin::remove_all(&dir) {
                Ok(removed) => log::info!(
                    "start failed: removed what this agent created bpffs={} maps={} links={}",
                    dir.display(),
                    removed.maps,
                    removed.links
                ),
                Err(e) => log::warn!("start failed, cannot clean up: {}", crate::error_chain(&e)),
            }
        }
        drop(lock);
        started
    }

    /// The rest of [`Agent::start`], with the directory locked.
    fn start_locked(
        opts: RunOptions,
        text: String,
        config: &ValidatedConfig,
        resolved: BTreeMap<String, u32>,
        lock: Rc<DirLock>,
        adopting: bool,
    ) -> Result<Self, DaemonError> {
        let datapath = Datapath::open_pinned(&opts.bpffs)?;
        log::info!(
            "datapath loaded bpffs={} pinned_maps={}",
            opts.bpffs.display(),
            if adopting { "reused" } else { "created" }
        );
        let settings = Settings::resolve(config, opts.flow_log.as_ref(), opts.flow_log_interval);
        let flow_log = FlowLog::new(settings, Names::new(config, &resolved))?;
        let record = AgentRecord {
            config: std::path::absolute(&opts.config).unwrap_or_else(|_| opts.config.clone()),
            pid: std::process::id(),
            xdp_mode: opts.xdp_mode.name().to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            ..AgentRecord::default()
        };
        let mut agent = Self {
            opts,
            datapath,
            attachments: Vec::new(),
            ifindexes: BTreeMap::new(),
            managed: Vec::new(),
            running: text,
            seen: None,
            read_error: None,
            flow_log,
            record,
            generation: 0,
            last_reload_rejected: false,
            nat_orphans: BTreeSet::new(),
            advertiser: None,
            sweeps: 0,
            _lock: lock,
        };
        agent.apply(config, resolved, "start")?;
        pin::write_record(&agent.opts.bpffs, &agent.record)?;
        let s = &agent.flow_log.settings;
        if s.logs.is_empty() {
            log::info!(
                "flow log interval={:?} destination=none (drained, not written)",
                s.interval
            );
        }
        for log in &s.logs {
            log::info!("flow log interval={:?} {}", s.interval, log.describe());
        }
        Ok(agent)
    }

    /// Rewrites the agent record (a failure is logged: it only affects `status`).
    fn save_record(&self) {
        if let Err(e) = pin::write_record(&self.opts.bpffs, &self.record) {
            log::warn!("cannot update the agent record: {}", crate::error_chain(&e));
        }
    }

    /// Ends a flow log interval: drains the counters and writes the records.
    fn drain_flows(&mut self) {
        let dir = &self.opts.bpffs;
        let drained = pin::open_map(dir, names::FLOWS).and_then(|mut flows| {
            let mut flows6 = pin::open_map(dir, names::FLOWS6)?;
            let mut skipped = pin::open_map(dir, names::FLOWS_SKIPPED)?;
            let mut generation = pin::open_map(dir, names::FLOWS_GEN)?;
            flowlog::drain::drain(&mut flows, &mut flows6, &mut skipped, &mut generation).map_err(
                |source| pin::PinError::Map {
                    path: pin::map_path(dir, names::FLOWS),
                    source,
                },
            )
        });
        let drained = match drained {
            Ok(d) => d,
            Err(e) => {
                log::error!("flow log: cannot drain: {}", crate::error_chain(&e));
                return;
            }
        };
        match self.flow_log.emit(&drained) {
            Ok(records) => {
                let skipped = drained.skipped.values().sum::<u64>() + drained.errors;
                // Packets the kernel could not record (FLOWS full) are data lost: a warning.
                let level = if skipped > 0 {
                    log::Level::Warn
                } else {
                    log::Level::Info
                };
                log::log!(
                    level,
                    "flow log: interval ended records={records} flows={} skipped_packets={skipped} \
                     drain_us={}",
                    drained.flows.len(),
                    drained.elapsed.as_micros()
                );
            }
            Err(e) => log::error!("flow log: {}", crate::error_chain(&e)),
        }
        self.record.flow_log = self.flow_log.counters.clone();
        self.save_record();
    }

    /// Removes expired connections (and their NAT ports).
    fn sweep(&mut self) {
        type SweepFn = fn(
            &mut aya::maps::Map,
            &mut aya::maps::Map,
            &aya::maps::Map,
            u64,
        ) -> Result<sweep::Swept, aya::maps::MapError>;
        let dir = &self.opts.bpffs;
        // Both tables: unassured connections (a half-open NAT connection holds a port too).
        let result = (|| {
            let mut nat = pin::open_map(dir, names::NAT_PORTS)?;
            let timeouts = pin::open_map(dir, names::CT_TIMEOUTS)?;
            let mut total = sweep::Swept::default();
            // IPv4 and IPv6 tables: the same sweep over their key types.
            let tables: [(&str, SweepFn); 4] = [
                (names::CONNTRACK, sweep::sweep::<CtKey>),
                (names::CT_UNASSURED, sweep::sweep::<CtKey>),
                (names::CONNTRACK6, sweep::sweep::<CtKey6>),
                (names::CT_UNASSURED6, sweep::sweep::<CtKey6>),
            ];
            for (table, sweep_table) in tables {
                let mut ct = pin::open_map(dir, table)?;
                let now = flowlog::monotonic_ns();
                let swept = sweep_table(&mut ct, &mut nat, &timeouts, now).map_err(|source| {
                    pin::PinError::Map {
                        path: pin::map_path(dir, table),
                        source,
                    }
                })?;
                total.scanned += swept.scanned;
                total.removed += swept.removed;
                total.nat_released += swept.nat_released;
                total.elapsed += swept.elapsed;
            }
            // Orphans are rare (an evicted or never-inserted connection): a scan of every
            // translation (two lookups each) once a minute, not at every sweep.
            self.sweeps += 1;
            if self.sweeps.is_multiple_of(sweep::ORPHAN_SCAN_EVERY) {
                let conntrack = pin::open_map(dir, names::CONNTRACK)?;
                let unassured = pin::open_map(dir, names::CT_UNASSURED)?;
                let orphans = &mut self.nat_orphans;
                total.nat_released += sweep::release_orphans(
                    &mut nat, &conntrack, &unassured, orphans,
                )
                .map_err(|source| pin::PinError::Map {
                    path: pin::map_path(dir, names::NAT_PORTS),
                    source,
                })?;
            }
            Ok::<_, pin::PinError>(total)
        })();
        match result {
            Ok(swept) if swept.removed > 0 || swept.nat_released > 0 => {
                log::info!(
                    "conntrack sweep removed={} nat_released={} scanned={} elapsed_us={}",
                    swept.removed,
                    swept.nat_released,
                    swept.scanned,
                    swept.elapsed.as_micros()
                );
                self.record.conntrack_swept += swept.removed;
                self.save_record();
            }
            Ok(_) => {}
            Err(e) => log::error!("conntrack sweep: {}", crate::error_chain(&e)),
        }
    }

    /// Prepares the interfaces, reconciles the maps, then attaches where needed: the policy is
    /// in the maps before any program runs on a new interface.
    fn apply(
        &mut self,
        config: &ValidatedConfig,
        resolved: BTreeMap<String, u32>,
        what: &str,
    ) -> Result<Outcome, DaemonError> {
        let managed = netconf::managed_interfaces(config);
        // The fail-closed guard first: from now on the kernel never forwards for these
        // interfaces, whatever happens to the agent or its programs.
        // Subnet interfaces and gateway links (nothing reaches a VPN's network around the VPC).
        let subnet_side: Vec<&str> = managed
            .iter()
            .filter(|m| m.kind != vpc_common::iface::IFACE_UPLINK)
            .map(|m| m.name.as_str())
            .collect();
        guard::install(&self.opts.bpffs, &subnet_side)?;
        for iface in &managed {
            netconf::prepare(iface).map_err(|source| DaemonError::Netconf {
                interface: iface.name.clone(),
                source,
            })?;
        }
        let (outcome, compiled) = reconcile::reconcile(&mut self.datapath, config, &SystemLinks)?;
        log_outcome(&outcome, what);
        self.generation = outcome.generation();
        self.detach_unmanaged(&managed);
        for iface in &managed {
            let changed = self.ifindexes.get(&iface.name) != resolved.get(&iface.name);
            let xdp = self.xdp_mode(&compiled, iface, resolved.get(&iface.name).copied())?;
            if xdp.is_none() {
                self.detach_program(&iface.name, programs::XDP);
            }
            for &program in programs_for(iface.kind, xdp.is_some()) {
                let have = self
                    .attachments
                    .iter()
                    .any(|a| a.interface == iface.name && a.program == program);
                if have && !changed {
                    continue;
                }
                self.attachments
                    .retain(|a| !(a.interface == iface.name && a.program == program));
                let attachment = self.datapath.attach_pinned(
                    &self.opts.bpffs,
                    &iface.name,
                    program,
                    xdp.unwrap_or(aya::programs::XdpMode::Skb),
                )?;
                log::info!(
                    "{} program={program} interface={} xdp_mode={}",
                    match attachment.how {
                        Attached::New => "attached",
                        Attached::Adopted => "adopted pinned link",
                    },
                    iface.name,
                    match xdp {
                        None => "none (TC path: virtual device)",
                        Some(aya::programs::XdpMode::Skb) => "skb",
                        Some(_) => "native",
                    }
                );
                self.attachments.push(attachment);
            }
        }
        let settings = Settings::resolve(
            config,
            self.opts.flow_log.as_ref(),
            self.opts.flow_log_interval,
        );
        let names = Names::new(config, &resolved);
        let interfaces = names.interfaces();
        // The policy is applied by now: a flow log that cannot follow is reported, not fatal.
        if let Err(e) = self.flow_log.reconfigure(settings, names) {
            log::error!("{what}: flow log: {}", crate::error_chain(&e));
        }
        if interfaces != self.record.interfaces {
            self.record.interfaces = interfaces;
            if what != "start" {
                self.save_record();
            }
        }
        self.ifindexes = resolved;
        self.managed = managed;
        self.advertise();
        Ok(outcome)
    }

    /// Sends a router advertisement on every IPv6 instance port (failures are logged: the
    /// datapath still answers solicitations).
    fn advertise(&mut self) {
        let ports: Vec<(&str, u32, [u8; 8])> = self
            .managed
            .iter()
            .filter_map(|m| {
                let prefix = m.ipv6_prefix?.network().octets();
                let ifindex = *self.ifindexes.get(&m.name)?;
                Some((m.name.as_str(), ifindex, prefix[..8].try_into().ok()?))
            })
            .collect();
        if ports.is_empty() {
            return;
        }
        if self.advertiser.is_none() {
            match Advertiser::new() {
                Ok(a) => self.advertiser = Some(a),
                Err(e) => {
                    log::warn!("router advertisements: {}", crate::error_chain(&e));
                    return;
                }
            }
        }
        let Some(advertiser) = &self.advertiser else {
            return;
        };
        for (name, ifindex, prefix) in ports {
            let sent = netconf::mac(name)
                .map_err(|e| crate::error_chain(&e))
                .and_then(|mac| {
                    advertiser
                        .send(name, ifindex, &advertise::frame(&mac, &prefix))
                        .map_err(|e| crate::error_chain(&e))
                });
            match sent {
                Ok(()) => log::debug!("router advertisement sent interface={name}"),
                Err(e) => log::warn!("router advertisement interface={name}: {e}"),
            }
        }
    }

    /// Where XDP runs on `iface` (ifindex `ifindex` in `compiled`), per `--xdp-mode`.
    fn xdp_mode(
        &self,
        compiled: &Compiled,
        iface: &Managed,
        ifindex: Option<u32>,
    ) -> Result<Option<aya::programs::XdpMode>, DaemonError> {
        let key = vpc_common::iface::IfaceKey {
            ifindex: ifindex.unwrap_or(0),
            slot: compiled.slot,
        };
        let info = compiled.ifaces.get(&key).copied().unwrap_or_default();
        Ok(self.opts.xdp_mode.xdp_for(&iface.name, &info)?)
    }

    /// Unpins (detaches) `program`'s link on interface `name`, if there is one.
    fn detach_program(&mut self, name: &str, program: &str) {
        self.attachments
            .retain(|a| !(a.interface == name && a.program == program));
        for (interface, pinned, path) in pin::pinned_links(&self.opts.bpffs) {
            if interface == name && pinned == program {
                match std::fs::remove_file(&path) {
                    Ok(()) => log::info!("detached program={program} interface={interface}"),
                    Err(e) => log::warn!("cannot unpin {}: {e}", path.display()),
                }
            }
        }
    }

    /// Unpins (detaches) every pinned link the definition does not call for: interfaces it no
    /// longer names, and programs an interface's kind does not carry. The pins are the truth,
    /// not this agent's memory: a restart with a definition that dropped an interface finds
    /// the previous agent's links there.
    fn detach_unmanaged(&mut self, managed: &[Managed]) {
        let wanted = |interface: &str, program: &str| {
            managed
                .iter()
                .any(|m| m.name == interface && programs_for(m.kind, true).contains(&program))
        };
        self.attachments.retain(|a| wanted(&a.interface, a.program));
        for (interface, program, path) in pin::pinned_links(&self.opts.bpffs) {
            if wanted(&interface, &program) {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => log::info!("detached program={program} interface={interface}"),
                Err(e) => log::warn!("cannot unpin {}: {e}", path.display()),
            }
        }
    }

    /// Reads the definition file; an error is logged once (until the file reads again).
    fn read_file(&mut self) -> Option<String> {
        match config::read_file(&self.opts.config) {
            Ok(text) => {
                self.read_error = None;
                Some(text)
            }
            Err(e) => {
                let message = crate::error_chain(&e);
                if self.read_error.as_ref() != Some(&message) {
                    log::error!("reload: {message}; the running policy stays");
                    self.read_error = Some(message);
                }
                None
            }
        }
    }

    /// The file poll: a changed definition is applied once two consecutive polls read the same
    /// content (a file being written, or written in several steps, is not applied half-way).
    fn poll_file(&mut self) {
        let Some(text) = self.read_file() else {
            return;
        };
        if text == self.running {
            self.seen = None;
            return;
        }
        match &self.seen {
            Some(seen) if seen.text == text => {
                if seen.state == Candidate::Settling {
                    self.try_apply(text, "reload");
                }
            }
            _ => {
                log::info!(
                    "reload: the definition changed; applying it if it still reads the same in \
                     {FILE_POLL:?}"
                );
                self.seen = Some(Seen {
                    text,
                    state: Candidate::Settling,
                });
            }
        }
    }

    /// SIGHUP: applies what the file holds now (the running definition again if unchanged).
    fn hangup(&mut self) {
        if let Some(text) = self.read_file() {
            self.try_apply(text, "reload");
        }
    }

    /// Applies the definition `text`; a failure keeps the running policy and is remembered.
    /// The service manager sees `RELOADING=1` until it is over (applied or rejected).
    fn try_apply(&mut self, text: String, what: &str) {
        notify::send(&notify::reloading());
        let result = self.apply_text(&text, what);
        self.last_reload_rejected = result.is_err();
        match result {
            Ok(()) => {
                self.running = text;
                self.seen = None;
            }
            Err(state) => {
                if text != self.running {
                    self.seen = Some(Seen { text, state });
                }
            }
        }
        notify::send(&notify::ready(&self.status_line()));
    }

    /// The `STATUS=` line systemd shows.
    fn status_line(&self) -> String {
        format!(
            "running generation={}{}",
            self.generation,
            if self.last_reload_rejected {
                "; the last reload was rejected (see the log)"
            } else {
                ""
            }
        )
    }

    fn apply_text(&mut self, text: &str, what: &str) -> Result<(), Candidate> {
        let config = match load_text(&self.opts.config, text) {
            Ok(config) => config,
            Err(LoadError::Invalid(d)) => {
                for line in d.lines() {
                    log::error!("{what}: {line}");
                }
                log::error!("{what}: invalid definition rejected; the running policy stays");
                return Err(Candidate::Rejected);
            }
            Err(e) => {
                log::error!(
                    "{what}: {}; the running policy stays",
                    crate::error_chain(&e)
                );
                return Err(Candidate::Rejected);
            }
        };
        let result = resolve(&config).and_then(|resolved| self.apply(&config, resolved, what));
        match result {
            Ok(_) => Ok(()),
            Err(DaemonError::MissingInterfaces(missing)) => {
                log::warn!(
                    "{what}: interfaces named by the definition are missing: {}; the running \
                     policy stays, the definition is applied when they appear",
                    missing.join(", ")
                );
                Err(Candidate::MissingInterfaces(missing))
            }
            Err(e) => {
                log::error!(
                    "{what}: {}; the running policy stays",
                    crate::error_chain(&e)
                );
                Err(Candidate::Rejected)
            }
        }
    }

    /// Re-applies when a managed interface came back with another ifindex (the running
    /// definition: the file is not read again), and applies a waiting definition once every
    /// interface it names exists.
    fn check_interfaces(&mut self) {
        if let Some(Seen {
            text,
            state: Candidate::MissingInterfaces(missing),
        }) = &self.seen
            && missing.iter().all(|name| links::ifindex(name).is_some())
        {
            log::info!(
                "interfaces appeared: {}; applying the waiting definition",
                missing.join(", ")
            );
            let text = text.clone();
            self.try_apply(text, "interfaces");
            return;
        }
        let mut changed = false;
        for name in self.ifindexes.keys() {
            let now = links::ifindex(name);
            if now.is_none() {
                log::debug!("interface missing interface={name}");
            }
            changed |= now.is_some() && now != self.ifindexes.get(name).copied();
        }
        if !changed {
            return;
        }
        log::warn!("a managed interface came back with a new ifindex; re-applying");
        let running = self.running.clone();
        let _ = self.apply_text(&running, "interfaces");
    }
}

/// The managed interfaces of `config` with their ifindex; all must exist.
fn resolve(config: &ValidatedConfig) -> Result<BTreeMap<String, u32>, DaemonError> {
    let mut found = BTreeMap::new();
    let mut missing = Vec::new();
    for iface in netconf::managed_interfaces(config) {
        match links::ifindex(&iface.name) {
            Some(index) => {
                found.insert(iface.name, index);
            }
            None => missing.push(iface.name),
        }
    }
    if missing.is_empty() {
        Ok(found)
    } else {
        Err(DaemonError::MissingInterfaces(missing))
    }
}

/// A ticker whose first tick is one `period` from now (flow log intervals, router
/// advertisements).
fn flow_ticker(period: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// Runs the agent until SIGTERM or SIGINT.
pub fn run(opts: RunOptions) -> Result<(), DaemonError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    runtime.block_on(async move {
        let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Runtime)?;
        let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Runtime)?;
        let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Runtime)?;
        let metrics = match opts.metrics {
            Some(addr) => Some((
                addr,
                crate::inspect::metrics::bind(addr)
                    .await
                    .map_err(|source| DaemonError::Metrics { addr, source })?,
            )),
            None => None,
        };
        let mut agent = Agent::start(opts)?;
        if let Some((addr, listener)) = metrics {
            log::info!("metrics listening addr={addr}");
            tokio::spawn(crate::inspect::metrics::serve(
                listener,
                agent.opts.bpffs.clone(),
            ));
        }
        log::info!(
            "running config={} bpffs={} (file polled every {:?}, interfaces every {:?})",
            agent.opts.config.display(),
            agent.opts.bpffs.display(),
            FILE_POLL,
            IFACE_POLL
        );
        // Attached and reconciled: systemd (Type=notify) may start what depends on us.
        notify::send(&notify::ready(&agent.status_line()));
        let mut file_tick = tokio::time::interval(FILE_POLL);
        let mut iface_tick = tokio::time::interval(IFACE_POLL);
        let mut sweep_tick = tokio::time::interval(SWEEP_INTERVAL);
        let mut period = agent.flow_log.settings.interval;
        let mut flow_tick = flow_ticker(period);
        let mut ra_tick = flow_ticker(agent.opts.router_advertisement_interval);
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    log::info!("SIGHUP: reopening the flow log file and reloading");
                    if let Err(e) = agent.flow_log.reopen() {
                        log::error!("flow log: {}", crate::error_chain(&e));
                    }
                    agent.hangup();
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = file_tick.tick() => agent.poll_file(),
                _ = iface_tick.tick() => agent.check_interfaces(),
                _ = flow_tick.tick() => agent.drain_flows(),
                _ = sweep_tick.tick() => agent.sweep(),
                _ = ra_tick.tick() => agent.advertise(),
            }
            if agent.flow_log.settings.interval != period {
                period = agent.flow_log.settings.interval;
                log::info!("flow log interval={period:?}");
                flow_tick = flow_ticker(period);
            }
        }
        notify::send("STOPPING=1");
        // The interval in progress is flushed.
        agent.drain_flows();
        log::info!("stopping; the datapath stays attached and enforcing (pinned)");
        Ok(())
    })
}
