//! Peering connections, and VPCs that may not overlap.

use super::*;

impl Validator {
    pub(super) fn peerings(&mut self, vpc: &model::Vpc, path: &str) -> Option<Vec<PeeringDef>> {
        let me = vpc.name.value.as_str();
        let mut out = Vec::new();
        for (i, pcx) in vpc.peering_connections.iter().enumerate() {
            let peer = &pcx.value.peer_vpc;
            let ppath = format!("{path}.peering_connections[{i}].peer_vpc");
            let index = self.globals.vpc_index.get(&peer.value).copied();
            if peer.value == me {
                let msg = format!("a peering connection cannot connect VPC '{me}' to itself");
                self.err(peer.pos, ppath, msg);
                out.push(None);
                continue;
            }
            if index.is_none() {
                self.err(peer.pos, ppath, format!("unknown VPC '{}'", peer.value));
            }
            out.push(index.map(|peer_vpc| PeeringDef {
                name: pcx.value.name.value.clone(),
                peer_vpc,
            }));
        }
        out.into_iter().collect()
    }

    /// Peered VPCs must not overlap (AWS), else a destination would be ambiguous.
    /// VPCs on one router share its routing table: no two may overlap (peered or not). Each
    /// clash is reported at the later VPC's block, naming the other VPC and its line.
    pub(super) fn check_vpc_overlaps(&mut self, file: &ConfigFile) {
        let mut seen: Vec<(Ipv4Net, &str, u32)> = Vec::new();
        for (i, vpc) in file.vpcs.iter().enumerate() {
            let vpc = &vpc.value;
            let mut mine = Vec::new();
            for (k, block) in vpc.cidr_blocks.value.iter().enumerate() {
                let Ok(net) = block.value.parse::<Ipv4Net>() else {
                    continue;
                };
                if let Some((other, name, line)) = seen.iter().find(|(o, ..)| overlaps(o, &net)) {
                    let msg = format!(
                        "CIDR block {net} overlaps {other} of VPC '{name}' (line {line}): VPCs on \
                         one router must not overlap"
                    );
                    self.err(block.pos, format!("vpcs[{i}].cidr_blocks[{k}]"), msg);
                }
                mine.push((net, vpc.name.value.as_str(), block.pos.line));
            }
            seen.extend(mine);
        }
    }
}
