//! The loaded datapath: the eBPF object with its programs verified and loaded, typed access to
//! its maps, applying a compiled definition and attaching to interfaces.

use std::{collections::BTreeMap, io, path::Path};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapError, PerCpuArray},
    programs::{
        ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, LinkError, PinnedLink},
        tc::SchedClassifierLink,
        xdp::XdpLink,
    },
};
use vpc_common::{
    DropReason, Hook, IPV6_INBOUND, IPV6_LINK, IPV6_ROUTE,
    drop::{DropStats, drop_slot},
    iface::{IFACE_F_VIRTUAL, IFACE_UPLINK, IfaceInfo, IfaceKey},
};

use crate::{
    compile::Compiled,
    datapath::object::{OBJECT, maps, programs},
    datapath::sync::{MapsError, SyncStats},
};

/// Errors of loading, attaching or reading the datapath.
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error("cannot load the eBPF object")]
    Load(#[from] aya::EbpfError),
    #[error("program {name} is missing from the eBPF object")]
    MissingProgram { name: &'static str },
    #[error("program {name} failed to load (verifier)")]
    Program {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("cannot attach {name} to {interface}")]
    Attach {
        name: &'static str,
        interface: String,
        #[source]
        source: ProgramError,
    },
    #[error("map {name} is missing from the eBPF object")]
    MissingMap { name: &'static str },
    #[error("map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error(transparent)]
    Maps(#[from] MapsError),
    #[error(transparent)]
    Pin(#[from] crate::datapath::pin::PinError),
    #[error("link of {name} on {interface}")]
    Link {
        name: &'static str,
        interface: String,
        #[source]
        source: LinkError,
    },
    #[error(
        "interface {interface} is a virtual device (veth/tap): native XDP cannot be correct there \
         (its frames may carry partial checksums from the hosts' offload, and XDP_REDIRECT into a \
         veth needs NAPI on its peer); use --xdp-mode auto (the default: the TC path on virtual \
         devices) or skb"
    )]
    NativeOnVirtual { interface: String },
    #[error(
        "interface {interface} already carries another vpc-agent's programs (an agent with \
         another --bpffs directory): one agent per interface"
    )]
    ForeignPrograms { interface: String },
    #[error("cannot open the pinned link of {name} on {interface} at {}", path.display())]
    OpenPinnedLink {
        name: &'static str,
        interface: String,
        path: std::path::PathBuf,
        #[source]
        source: LinkError,
    },
    #[error("cannot pin the link of {name} on {interface} at {}", path.display())]
    PinLinkAt {
        name: &'static str,
        interface: String,
        path: std::path::PathBuf,
        #[source]
        source: Box<aya::pin::PinError>,
    },
    #[error("cannot pin the link of {name} on {interface} at {}", path.display())]
    PinLink {
        name: &'static str,
        interface: String,
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
}

/// How a program came to be attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    /// A new link was created and pinned.
    New,
    /// The pinned link of a previous agent now runs this agent's program (atomic replacement:
    /// the interface was never without a program).
    Adopted,
}

/// One program on one interface, with its pinned link.
pub struct Attachment {
    pub interface: String,
    pub program: &'static str,
    pub how: Attached,
    _link: PinnedLink,
}

/// `--xdp-mode`: where the XDP program runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttachMode {
    /// Native XDP on devices whose frames arrive with complete checksums (NICs); on virtual
    /// devices (veth, tap) the TC program alone, since their frames may carry partial
    /// checksums and GSO aggregates that only the skb knows about.
    #[default]
    Auto,
    /// Native XDP everywhere; refused on a virtual device (it cannot be correct there).
    Native,
    /// Generic (skb) XDP everywhere; on virtual devices it leaves every packet to TC.
    Skb,
}

impl AttachMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Native => "native",
            Self::Skb => "skb",
        }
    }

    /// The XDP mode for an interface (`None`: no XDP, the TC program does everything).
    pub fn xdp_for(
        self,
        interface: &str,
        info: &IfaceInfo,
    ) -> Result<Option<XdpMode>, DatapathError> {
        let virtual_device = info.flags & IFACE_F_VIRTUAL != 0;
        match self {
            Self::Auto if virtual_device => Ok(None),
            Self::Auto | Self::Native if !virtual_device => Ok(Some(XdpMode::Driver)),
            Self::Native => Err(DatapathError::NativeOnVirtual {
                interface: interface.to_owned(),
            }),
            _ => Ok(Some(XdpMode::Skb)),
        }
    }
}

/// The programs an interface of a given kind carries (`xdp`: whether XDP runs there): the
/// egress guard on every interface but an uplink (subnets and gateway links).
pub fn programs_for(kind: u8, xdp: bool) -> &'static [&'static str] {
    match (kind != IFACE_UPLINK, xdp) {
        (true, true) => &[programs::XDP, programs::TC_INGRESS, programs::TC_EGRESS],
        (true, false) => &[programs::TC_INGRESS, programs::TC_EGRESS],
        (false, true) => &[programs::XDP, programs::TC_INGRESS],
        (false, false) => &[programs::TC_INGRESS],
    }
}

/// The eBPF object, loaded into the kernel.
pub struct Datapath {
    ebpf: Ebpf,
}

impl Datapath {
    /// Loads every map and program of the embedded object (the verifier runs here).
    pub fn load() -> Result<Self, DatapathError> {
        Self::load_with(EbpfLoader::new())
    }

    /// Loads the object with its maps pinned under `dir`: maps already pinned there are reused
    /// (with their contents: policy, counters, state) after a compatibility check, missing ones
    /// are created and pinned.
    pub fn open_pinned(dir: &Path) -> Result<Self, DatapathError> {
        crate::datapath::pin::check_compatible(dir)?;
        let mut loader = EbpfLoader::new();
        for name in maps::names() {
            loader.map_pin_path(name, crate::datapath::pin::map_path(dir, name));
        }
        let datapath = Self::load_with(loader)?;
        crate::datapath::pin::check_layout(
            dir,
            &crate::datapath::sync::read_config(&datapath.ebpf)?,
        )?;
        Ok(datapath)
    }

    fn load_with(mut loader: EbpfLoader<'_>) -> Result<Self, DatapathError> {
        let mut ebpf = loader.load(OBJECT)?;
        for name in [
            programs::XDP,
            programs::XDP_OUTSIDE,
            programs::XDP6,
            programs::XDP6_ROUTE,
            programs::XDP6_INBOUND,
        ] {
            let xdp: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or(DatapathError::MissingProgram { name })?
                .try_into()
                .map_err(|source| DatapathError::Program { name, source })?;
            load_retrying(|| xdp.load())
                .map_err(|source| DatapathError::Program { name, source })?;
        }
        for name in [
            programs::TC_INGRESS,
            programs::TC_EGRESS,
            programs::TC_TRACE,
            programs::TC6,
            programs::TC6_ROUTE,
            programs::TC6_INBOUND,
        ] {
            let tc: &mut SchedClassifier = ebpf
                .program_mut(name)
                .ok_or(DatapathError::MissingProgram { name })?
                .try_into()
                .map_err(|source| DatapathError::Program { name, source })?;
            load_retrying(|| tc.load())
                .map_err(|source| DatapathError::Program { name, source })?;
        }
        link_tail_calls(&mut ebpf)?;
        Ok(Self { ebpf })
    }

    /// The XDP ingress program.
    pub fn xdp(&self) -> &Xdp {
        self.ebpf
            .program(programs::XDP)
            .and_then(|p| <&Xdp>::try_from(p).ok())
            .expect("loaded in Datapath::load")
    }

    /// The XDP ingress program, mutable (to attach it).
    pub fn xdp_mut(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(programs::XDP)
            .and_then(|p| <&mut Xdp>::try_from(p).ok())
            .expect("loaded in Datapath::load")
    }

    /// A TC program by name (`programs::TC_INGRESS` / `TC_EGRESS`).
    pub fn tc(&self, name: &'static str) -> &SchedClassifier {
        self.ebpf
            .program(name)
            .and_then(|p| <&SchedClassifier>::try_from(p).ok())
            .expect("loaded in Datapath::load")
    }

    fn tc_mut(&mut self, name: &'static str) -> &mut SchedClassifier {
        self.ebpf
            .program_mut(name)
            .and_then(|p| <&mut SchedClassifier>::try_from(p).ok())
            .expect("loaded in Datapath::load")
    }

    /// The underlying object, for map access by name.
    pub fn ebpf(&self) -> &Ebpf {
        &self.ebpf
    }

    /// The underlying object, for map access by name.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// Writes a compiled definition into its slot (by difference) and makes it active.
    pub fn apply(
        &mut self,
        compiled: &Compiled,
        generation: u64,
    ) -> Result<SyncStats, DatapathError> {
        Ok(crate::datapath::sync::apply(
            &mut self.ebpf,
            compiled,
            generation,
        )?)
    }

    /// Attaches the programs to every interface of `compiled` (in the calling thread's network
    /// namespace): XDP as `mode` decides for the interface and TC ingress everywhere, the TC
    /// egress guard on subnet interfaces. `ifname` maps an ifindex back to its name.
    pub fn attach_all(
        &mut self,
        compiled: &Compiled,
        mode: AttachMode,
        ifname: &dyn Fn(u32) -> Option<String>,
    ) -> Result<(), DatapathError> {
        let ifaces: Vec<(IfaceKey, IfaceInfo)> =
            compiled.ifaces.iter().map(|(k, v)| (*k, *v)).collect();
        for (key, info) in ifaces {
            let kind = info.kind;
            let interface = ifname(key.ifindex).unwrap_or_else(|| key.ifindex.to_string());
            let xdp = mode.xdp_for(&interface, &info)?;
            let attach_err = |name| {
                let interface = interface.clone();
                move |source| DatapathError::Attach {
                    name,
                    interface,
                    source,
                }
            };
            if let Some(xdp) = xdp {
                self.xdp_mut()
                    .attach(&interface, xdp)
                    .map_err(attach_err(programs::XDP))?;
            }
            self.tc_mut(programs::TC_INGRESS)
                .attach(&interface, TcAttachType::Ingress)
                .map_err(attach_err(programs::TC_INGRESS))?;
            if programs_for(kind, false).contains(&programs::TC_EGRESS) {
                self.tc_mut(programs::TC_EGRESS)
                    .attach(&interface, TcAttachType::Egress)
                    .map_err(attach_err(programs::TC_EGRESS))?;
            }
        }
        Ok(())
    }

    /// Attaches `program` to `interface` through a link pinned at `path` under `dir`: an
    /// existing pinned link (a previous agent's) is updated in place to this program, so the
    /// interface is never without one and never has two; a link that no longer works (its
    /// interface went away) is replaced by a new one.
    pub fn attach_pinned(
        &mut self,
        dir: &Path,
        interface: &str,
        program: &'static str,
        mode: XdpMode,
    ) -> Result<Attachment, DatapathError> {
        let path = crate::datapath::pin::link_path(dir, interface, program);
        let attach_err = |source| DatapathError::Attach {
            name: program,
            interface: interface.to_owned(),
            source,
        };
        let pin_err = |source| DatapathError::PinLink {
            name: program,
            interface: interface.to_owned(),
            path: path.clone(),
            source,
        };
        let open_err = |source| DatapathError::OpenPinnedLink {
            name: program,
            interface: interface.to_owned(),
            path: path.clone(),
            source,
        };
        let link_err = |source| DatapathError::Link {
            name: program,
            interface: interface.to_owned(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(pin_err)?;
        }
        match PinnedLink::from_pin(&path) {
            Ok(_) if !Self::pinned_on(&path, interface) => {
                log::warn!(
                    "pinned link is on another device, replacing it interface={interface} \
                     program={program}"
                );
                std::fs::remove_file(&path).map_err(pin_err)?;
            }
            Ok(pinned) => {
                let fd: FdLink = pinned.into();
                match self.update_link(interface, program, fd) {
                    Ok(()) => {
                        let link = PinnedLink::from_pin(&path).map_err(open_err)?;
                        return Ok(Attachment {
                            interface: interface.to_owned(),
                            program,
                            how: Attached::Adopted,
                            _link: link,
                        });
                    }
                    Err(e) => {
                        log::warn!(
                            "pinned link unusable, replacing it interface={interface} \
                             program={program} error={e}"
                        );
                        std::fs::remove_file(&path).map_err(pin_err)?;
                    }
                }
            }
            Err(LinkError::SyscallError(e)) if e.io_error.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(open_err(e)),
        }
        if program != programs::XDP {
            // tcx lets several programs share a hook: refuse to stack on another agent's.
            let side = if program == programs::TC_EGRESS {
                TcAttachType::Egress
            } else {
                TcAttachType::Ingress
            };
            let (_, present) = SchedClassifier::query_tcx(interface, side).map_err(attach_err)?;
            if present.iter().any(|p| p.name_as_str() == Some(program)) {
                return Err(DatapathError::ForeignPrograms {
                    interface: interface.to_owned(),
                });
            }
        }
        let fd: FdLink = if program == programs::XDP {
            let xdp = self.xdp_mut();
            let id = xdp.attach(interface, mode).map_err(attach_err)?;
            let link = xdp.take_link(id).map_err(attach_err)?;
            FdLink::try_from(link).map_err(link_err)?
        } else {
            let tc = self.tc_mut(program);
            let side = if program == programs::TC_EGRESS {
                TcAttachType::Egress
            } else {
                TcAttachType::Ingress
            };
            let id = tc.attach(interface, side).map_err(attach_err)?;
            let link = tc.take_link(id).map_err(attach_err)?;
            FdLink::try_from(link).map_err(link_err)?
        };
        let link = fd.pin(&path).map_err(|source| DatapathError::PinLinkAt {
            name: program,
            interface: interface.to_owned(),
            path: path.clone(),
            source: Box::new(source),
        })?;
        Ok(Attachment {
            interface: interface.to_owned(),
            program,
            how: Attached::New,
            _link: link,
        })
    }

    /// Whether the link pinned at `path` is attached to the device now named `interface` (a
    /// renamed device keeps its links; the pin's name does not follow it).
    fn pinned_on(path: &Path, interface: &str) -> bool {
        let now = crate::links::ifindex(interface);
        match crate::datapath::pin::pinned_link_ifindex(path) {
            Ok(Some(ifindex)) => Some(ifindex) == now,
            // Not a device link, or unreadable: the link update decides.
            Ok(None) | Err(_) => true,
        }
    }

    /// Points an existing link at this agent's `program` (bpf_link_update).
    fn update_link(
        &mut self,
        interface: &str,
        program: &'static str,
        fd: FdLink,
    ) -> Result<(), DatapathError> {
        let link_err = |source| DatapathError::Link {
            name: program,
            interface: interface.to_owned(),
            source,
        };
        let attach_err = |source| DatapathError::Attach {
            name: program,
            interface: interface.to_owned(),
            source,
        };
        if program == programs::XDP {
            let link = XdpLink::try_from(fd).map_err(link_err)?;
            let xdp = self.xdp_mut();
            let id = xdp.attach_to_link(link).map_err(attach_err)?;
            // Keep the link out of the program's bookkeeping: the pin owns it.
            drop(xdp.take_link(id).map_err(attach_err)?);
        } else {
            let link = SchedClassifierLink::try_from(fd).map_err(link_err)?;
            let tc = self.tc_mut(program);
            let id = tc.attach_to_link(link).map_err(attach_err)?;
            drop(tc.take_link(id).map_err(attach_err)?);
        }
        Ok(())
    }

    /// Drops per reason, summed over CPUs (reasons never seen are absent).
    pub fn drop_counters(&self) -> Result<BTreeMap<DropReason, u64>, DatapathError> {
        let name = maps::DROP_COUNTERS;
        let map = self.map_named(name)?;
        drop_counters(map).map_err(|source| DatapathError::Map { name, source })
    }

    /// Drops by (reason, hook), packets and bytes, summed over CPUs.
    pub fn drop_stats(&self) -> Result<BTreeMap<(DropReason, Hook), DropStats>, DatapathError> {
        let name = maps::DROP_COUNTERS;
        let map = self.map_named(name)?;
        drop_stats(map).map_err(|source| DatapathError::Map { name, source })
    }

    fn map_named(&self, name: &'static str) -> Result<&aya::maps::Map, DatapathError> {
        self.ebpf
            .map(name)
            .ok_or(DatapathError::MissingMap { name })
    }
}

/// Dropped packets per reason in a `DROP_COUNTERS` map, summed over CPUs and hooks (reasons
/// never seen are absent).
pub fn drop_counters(map: &aya::maps::Map) -> Result<BTreeMap<DropReason, u64>, MapError> {
    let mut out = BTreeMap::new();
    for ((reason, _), stats) in drop_stats(map)? {
        *out.entry(reason).or_insert(0) += stats.packets;
    }
    Ok(out)
}

/// Drops per (reason, hook) in a `DROP_COUNTERS` map, packets and bytes summed over CPUs
/// (pairs never seen are absent).
pub fn drop_stats(
    map: &aya::maps::Map,
) -> Result<BTreeMap<(DropReason, Hook), DropStats>, MapError> {
    let counters: PerCpuArray<_, DropStats> = PerCpuArray::try_from(map)?;
    let mut out = BTreeMap::new();
    for hook in Hook::ALL {
        for reason in DropReason::ALL {
            let mut total = DropStats::default();
            for cpu in counters.get(&drop_slot(reason, hook), 0)?.iter() {
                total.packets += cpu.packets;
                total.bytes += cpu.bytes;
            }
            if total.packets > 0 {
                out.insert((reason, hook), total);
            }
        }
    }
    Ok(out)
}

/// Fills the program arrays of a loaded object (its programs loaded): trace runs of the TC
/// ingress program reach the trace-mode program (`vpc-agent trace`), the XDP program hands
/// uplink and gateway packets to its outside half, and both ingress programs hand IPv6 on
/// subnet interfaces to their IPv6 programs. Without them those packets are dropped.
pub fn link_tail_calls(ebpf: &mut Ebpf) -> Result<(), DatapathError> {
    set_tail_call(ebpf, maps::TRACE_PROG, 0, programs::TC_TRACE)?;
    set_tail_call(ebpf, maps::TC_IPV6, IPV6_LINK, programs::TC6)?;
    set_tail_call(ebpf, maps::TC_IPV6, IPV6_ROUTE, programs::TC6_ROUTE)?;
    set_tail_call(ebpf, maps::TC_IPV6, IPV6_INBOUND, programs::TC6_INBOUND)?;
    set_xdp_outside(ebpf)
}

/// The XDP half of [`link_tail_calls`] (for a loader that loads only the XDP programs).
pub fn set_xdp_outside(ebpf: &mut Ebpf) -> Result<(), DatapathError> {
    set_tail_call(ebpf, maps::XDP_IPV6, IPV6_LINK, programs::XDP6)?;
    set_tail_call(ebpf, maps::XDP_IPV6, IPV6_ROUTE, programs::XDP6_ROUTE)?;
    set_tail_call(ebpf, maps::XDP_IPV6, IPV6_INBOUND, programs::XDP6_INBOUND)?;
    set_tail_call(ebpf, maps::XDP_OUTSIDE, 0, programs::XDP_OUTSIDE)
}

/// Points program array `map_name`'s slot 0 at program `name`.
fn set_tail_call(
    ebpf: &mut Ebpf,
    map_name: &'static str,
    slot: u32,
    name: &'static str,
) -> Result<(), DatapathError> {
    let program_err = |source| DatapathError::Program { name, source };
    let fd = ebpf
        .program(name)
        .ok_or(DatapathError::MissingProgram { name })?
        .fd()
        .map_err(program_err)?
        .try_clone()
        .map_err(|e| program_err(ProgramError::IOError(e)))?;
    let map_err = |source| DatapathError::Map {
        name: map_name,
        source,
    };
    let map = ebpf
        .map_mut(map_name)
        .ok_or(DatapathError::MissingMap { name: map_name })?;
    aya::maps::ProgramArray::try_from(map)
        .map_err(map_err)?
        .set(slot, &fd, 0)
        .map_err(map_err)
}

/// Times a program load is tried when the verifier was interrupted (as libbpf does).
const LOAD_ATTEMPTS: u32 = 5;

/// Runs `load` again when the kernel returned `EAGAIN`: the verifier gives up on a long
/// program when a signal is pending for the loading thread (a child of the process exiting,
/// say) and asks for the load to be repeated. Any other error is returned at once.
pub fn load_retrying(
    mut load: impl FnMut() -> Result<(), ProgramError>,
) -> Result<(), ProgramError> {
    let mut attempt = 1;
    loop {
        match load() {
            Err(ProgramError::LoadError { io_error, .. })
                if io_error.raw_os_error() == Some(libc::EAGAIN) && attempt < LOAD_ATTEMPTS =>
            {
                log::debug!("program load interrupted (EAGAIN), attempt {attempt}: retrying");
                attempt += 1;
            }
            other => return other,
        }
    }
}
