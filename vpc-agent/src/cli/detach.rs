//! `vpc-agent detach`: removes every program, link and pinned map the agent created, and the
//! fail-closed guard.

use std::path::Path;

use vpc_agent::{daemon::guard, datapath::pin, error_chain};

use super::{Failure, env};

pub(super) fn detach(bpffs: &Path) -> Result<(), Failure> {
    if guard::remove(bpffs).map_err(|e| env(error_chain(&e)))? {
        log::info!(
            "removed the fail-closed guard table=inet {}",
            guard::table_name(bpffs)
        );
    }
    if !bpffs.exists() {
        log::info!("nothing to detach bpffs={}", bpffs.display());
        return Ok(());
    }
    let _lock = pin::lock(bpffs).map_err(|e| env(error_chain(&e)))?;
    let removed = pin::remove_all(bpffs).map_err(|e| env(error_chain(&e)))?;
    log::info!(
        "detached bpffs={} links={} maps={}",
        bpffs.display(),
        removed.links,
        removed.maps
    );
    Ok(())
}
