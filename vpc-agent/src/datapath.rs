//! The loaded datapath: the eBPF object with its programs verified and loaded, typed access to
//! its maps, applying a compiled definition and attaching to interfaces.

use std::collections::BTreeMap;

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapError, PerCpuArray},
    programs::{ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode},
};
use vpc_common::{
    DropReason,
    iface::{IFACE_SUBNET, IfaceKey},
};

use crate::{
    compile::Compiled,
    ebpf::{OBJECT, maps, programs},
    maps::{MapsError, SyncStats},
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
}

/// The eBPF object, loaded into the kernel.
pub struct Datapath {
    ebpf: Ebpf,
}

impl Datapath {
    /// Loads every map and program of the embedded object (the verifier runs here).
    pub fn load() -> Result<Self, DatapathError> {
        let mut ebpf = EbpfLoader::new().load(OBJECT)?;
        let name = programs::XDP;
        let xdp: &mut Xdp = ebpf
            .program_mut(name)
            .ok_or(DatapathError::MissingProgram { name })?
            .try_into()
            .map_err(|source| DatapathError::Program { name, source })?;
        xdp.load()
            .map_err(|source| DatapathError::Program { name, source })?;
        for name in [programs::TC_INGRESS, programs::TC_EGRESS] {
            let tc: &mut SchedClassifier = ebpf
                .program_mut(name)
                .ok_or(DatapathError::MissingProgram { name })?
                .try_into()
                .map_err(|source| DatapathError::Program { name, source })?;
            tc.load()
                .map_err(|source| DatapathError::Program { name, source })?;
        }
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
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// Writes a compiled definition into its slot (by difference) and makes it active.
    pub fn apply(
        &mut self,
        compiled: &Compiled,
        generation: u64,
    ) -> Result<SyncStats, DatapathError> {
        Ok(crate::maps::apply(&mut self.ebpf, compiled, generation)?)
    }

    /// Attaches the programs to every interface of `compiled` (in the calling thread's network
    /// namespace): XDP in `mode` and TC ingress everywhere, the TC egress guard on subnet
    /// interfaces. `ifname` maps an ifindex back to its name.
    pub fn attach_all(
        &mut self,
        compiled: &Compiled,
        mode: XdpMode,
        ifname: &dyn Fn(u32) -> Option<String>,
    ) -> Result<(), DatapathError> {
        let ifaces: Vec<(IfaceKey, u8)> =
            compiled.ifaces.iter().map(|(k, v)| (*k, v.kind)).collect();
        for (key, kind) in ifaces {
            let interface = ifname(key.ifindex).unwrap_or_else(|| key.ifindex.to_string());
            let attach_err = |name| {
                let interface = interface.clone();
                move |source| DatapathError::Attach {
                    name,
                    interface,
                    source,
                }
            };
            self.xdp_mut()
                .attach(&interface, mode)
                .map_err(attach_err(programs::XDP))?;
            self.tc_mut(programs::TC_INGRESS)
                .attach(&interface, TcAttachType::Ingress)
                .map_err(attach_err(programs::TC_INGRESS))?;
            if kind == IFACE_SUBNET {
                self.tc_mut(programs::TC_EGRESS)
                    .attach(&interface, TcAttachType::Egress)
                    .map_err(attach_err(programs::TC_EGRESS))?;
            }
        }
        Ok(())
    }

    /// Drops per reason, summed over CPUs (reasons never seen are absent).
    pub fn drop_counters(&self) -> Result<BTreeMap<DropReason, u64>, DatapathError> {
        let name = maps::DROP_COUNTERS;
        let map = self
            .ebpf
            .map(name)
            .ok_or(DatapathError::MissingMap { name })?;
        let counters: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map).map_err(|source| DatapathError::Map { name, source })?;
        let mut out = BTreeMap::new();
        for reason in DropReason::ALL {
            let values = counters
                .get(&(reason as u32), 0)
                .map_err(|source| DatapathError::Map { name, source })?;
            let total: u64 = values.iter().sum();
            if total > 0 {
                out.insert(reason, total);
            }
        }
        Ok(out)
    }
}
