//! `vpc-agent run`: the daemon. It loads the datapath with its maps pinned under the bpffs
//! directory (adopting what a previous agent left there), reconciles the maps to the definition
//! *before* attaching (so there is never an allow-all window), attaches through pinned links,
//! and then stays in the foreground:
//!
//! - the definition file is **polled** every [`FILE_POLL`] (content compared) and reloaded on
//!   SIGHUP; an invalid file is reported and the running generation stays;
//! - interfaces are **polled** every [`IFACE_POLL`]: one that disappeared and came back (new
//!   ifindex) gets the policy recompiled and the programs re-attached;
//! - SIGTERM / SIGINT stop the agent and leave the datapath enforcing (links and maps pinned).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use aya::programs::XdpMode;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    compile::CompileError,
    config::{self, LoadError, ValidatedConfig},
    datapath::{Attached, Attachment, Datapath, DatapathError, programs_for},
    netconf::{self, Managed, NetconfError},
    pin::{self, AgentRecord, DirLock, PinError},
    reconcile::{self, Outcome, ReconcileError},
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
    pub xdp_mode: XdpMode,
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
    #[error("cannot start the event loop")]
    Runtime(#[source] std::io::Error),
}

impl DaemonError {
    /// Exit status per cli.md: 1 for a problem with the file, 2 for the environment.
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
    /// The file content of the running (or last rejected) definition.
    text: String,
    _lock: DirLock,
}

fn xdp_mode_name(mode: XdpMode) -> &'static str {
    if mode == XdpMode::Skb {
        "skb"
    } else {
        "native"
    }
}

fn read_text(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })
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
        let text = read_text(&opts.config)?;
        let config = load_text(&opts.config, &text)?;
        // Interfaces first: nothing is created in the kernel for a definition that cannot run.
        let resolved = resolve(&config)?;
        pin::ensure_bpffs(&opts.bpffs)?;
        let lock = pin::lock(&opts.bpffs)?;
        let adopting = pin::map_path(&opts.bpffs, crate::ebpf::maps::CONFIG).exists();
        let datapath = Datapath::open_pinned(&opts.bpffs)?;
        log::info!(
            "datapath loaded bpffs={} pinned_maps={}",
            opts.bpffs.display(),
            if adopting { "reused" } else { "created" }
        );
        let mut agent = Self {
            opts,
            datapath,
            attachments: Vec::new(),
            ifindexes: BTreeMap::new(),
            managed: Vec::new(),
            text,
            _lock: lock,
        };
        agent.apply(&config, resolved, "start")?;
        pin::write_record(
            &agent.opts.bpffs,
            &AgentRecord {
                config: std::path::absolute(&agent.opts.config)
                    .unwrap_or_else(|_| agent.opts.config.clone()),
                pid: std::process::id(),
                xdp_mode: xdp_mode_name(agent.opts.xdp_mode).to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
        )?;
        Ok(agent)
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
        for iface in &managed {
            netconf::prepare(iface).map_err(|source| DaemonError::Netconf {
                interface: iface.name.clone(),
                source,
            })?;
        }
        let lookup = |name: &str| resolved.get(name).copied();
        let (outcome, _) = reconcile::reconcile(&mut self.datapath, config, &lookup)?;
        log_outcome(&outcome, what);
        // Links of interfaces the definition no longer names: unpinned (detached).
        let gone: Vec<String> = self
            .managed
            .iter()
            .filter(|old| !managed.iter().any(|m| m.name == old.name))
            .map(|old| old.name.clone())
            .collect();
        for name in &gone {
            self.detach_interface(name);
        }
        for iface in &managed {
            let changed = self.ifindexes.get(&iface.name) != resolved.get(&iface.name);
            for &program in programs_for(iface.kind) {
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
                    self.opts.xdp_mode,
                )?;
                log::info!(
                    "{} program={program} interface={} xdp_mode={}",
                    match attachment.how {
                        Attached::New => "attached",
                        Attached::Adopted => "adopted pinned link",
                    },
                    iface.name,
                    xdp_mode_name(self.opts.xdp_mode)
                );
                self.attachments.push(attachment);
            }
        }
        self.ifindexes = resolved;
        self.managed = managed;
        Ok(outcome)
    }

    fn detach_interface(&mut self, name: &str) {
        self.attachments.retain(|a| a.interface != name);
        for (interface, program, path) in pin::pinned_links(&self.opts.bpffs) {
            if interface == name {
                match std::fs::remove_file(&path) {
                    Ok(()) => log::info!("detached program={program} interface={interface}"),
                    Err(e) => log::warn!("cannot unpin {}: {e}", path.display()),
                }
            }
        }
    }

    /// Reloads the definition: `force` on SIGHUP, otherwise only when the content changed.
    fn reload(&mut self, force: bool) {
        let text = match read_text(&self.opts.config) {
            Ok(text) => text,
            Err(e) => {
                log::error!(
                    "reload: {}; the running policy stays",
                    crate::error_chain(&e)
                );
                return;
            }
        };
        if !force && text == self.text {
            return;
        }
        self.text = text;
        let config = match load_text(&self.opts.config, &self.text) {
            Ok(config) => config,
            Err(LoadError::Invalid(d)) => {
                for line in d.lines() {
                    log::error!("reload: {line}");
                }
                log::error!("reload: invalid definition rejected; the running policy stays");
                return;
            }
            Err(e) => {
                log::error!(
                    "reload: {}; the running policy stays",
                    crate::error_chain(&e)
                );
                return;
            }
        };
        let result = resolve(&config).and_then(|resolved| self.apply(&config, resolved, "reload"));
        if let Err(e) = result {
            log::error!(
                "reload: {}; the running policy stays",
                crate::error_chain(&e)
            );
        }
    }

    /// Re-applies when a managed interface came back with another ifindex.
    fn check_interfaces(&mut self) {
        let mut changed = false;
        for name in self.ifindexes.keys() {
            let now = netconf::ifindex(name);
            if now.is_none() {
                log::debug!("interface missing interface={name}");
            }
            changed |= now.is_some() && now != self.ifindexes.get(name).copied();
        }
        if !changed {
            return;
        }
        log::warn!("a managed interface came back with a new ifindex; re-applying");
        self.reload(true);
    }
}

/// The managed interfaces of `config` with their ifindex; all must exist.
fn resolve(config: &ValidatedConfig) -> Result<BTreeMap<String, u32>, DaemonError> {
    let mut found = BTreeMap::new();
    let mut missing = Vec::new();
    for iface in netconf::managed_interfaces(config) {
        match netconf::ifindex(&iface.name) {
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
        let mut agent = Agent::start(opts)?;
        log::info!(
            "running config={} bpffs={} (file polled every {:?}, interfaces every {:?})",
            agent.opts.config.display(),
            agent.opts.bpffs.display(),
            FILE_POLL,
            IFACE_POLL
        );
        let mut file_tick = tokio::time::interval(FILE_POLL);
        let mut iface_tick = tokio::time::interval(IFACE_POLL);
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    log::info!("SIGHUP: reloading");
                    agent.reload(true);
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = file_tick.tick() => agent.reload(false),
                _ = iface_tick.tick() => agent.check_interfaces(),
            }
        }
        log::info!("stopping; the datapath stays attached and enforcing (pinned)");
        Ok(())
    })
}
