//! IPv4 fragments: a first fragment records its ports, later fragments (no transport header)
//! take them, so that they follow their datagram's connection and rules.

use vpc_common::DropReason;

use crate::{
    maps::{FRAGMENTS, FragKey, FragPorts},
    packet::{Flow, Frag},
    trace::Mode,
};

/// First fragments record their ports; later fragments take them (or are dropped).
#[inline(always)]
pub fn classify<M: Mode>(mode: M, flow: &mut Flow) -> Result<(), DropReason> {
    let key = FragKey {
        src: flow.src,
        dst: flow.dst,
        id: flow.ip_id,
        proto: flow.proto,
        _pad: 0,
    };
    match flow.frag {
        Frag::None => Ok(()),
        Frag::First => {
            let ports = FragPorts {
                sport: flow.sport,
                dport: flow.dport,
            };
            // A full table only costs later fragments their classification (counted there).
            if !mode.tracing() {
                let _ = FRAGMENTS.insert(key, ports, 0);
            }
            Ok(())
        }
        Frag::Later => {
            // SAFETY: the value is copied out at once; a concurrent update can only change
            // which (valid) ports we read.
            let ports = unsafe { FRAGMENTS.get(key) }.copied();
            let ports = ports.ok_or(DropReason::Fragment)?;
            flow.sport = ports.sport;
            flow.dport = ports.dport;
            Ok(())
        }
    }
}
