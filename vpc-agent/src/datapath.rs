//! The loaded datapath: the eBPF object with its programs verified and loaded, and typed access
//! to its maps. Attaching, pinning and reconciling build on this.

use std::collections::BTreeMap;

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapError, PerCpuArray},
    programs::{ProgramError, Xdp},
};
use vpc_common::DropReason;

use crate::ebpf::{OBJECT, maps, programs};

/// Errors of loading or reading the datapath.
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
    #[error("map {name} is missing from the eBPF object")]
    MissingMap { name: &'static str },
    #[error("map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
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

    /// The underlying object, for map access by name.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
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
