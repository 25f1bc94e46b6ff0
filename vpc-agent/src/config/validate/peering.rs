//! Peering connections (accepted only when both VPCs declare them, naming each other), group
//! references across them (`sg:VPC/NAME`), and VPCs that may not overlap.

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
            let Some(peer_vpc) = index else {
                self.err(peer.pos, ppath, format!("unknown VPC '{}'", peer.value));
                out.push(None);
                continue;
            };
            let name = &pcx.value.name.value;
            let clashes = self.peering_clashes(me, name, &peer.value);
            let accepted = self.globals.accepted(me, name, &peer.value);
            let clashed = !clashes.is_empty();
            for msg in clashes {
                self.err(peer.pos, ppath.clone(), msg);
            }
            if !clashed && !accepted {
                let msg = format!(
                    "warning: peering connection '{name}' is not accepted: VPC '{}' declares no \
                     peering connection '{name}' with peer_vpc '{me}'; until it does, the \
                     connection carries nothing (routes to it drop packets as blackhole)",
                    peer.value
                );
                let dpath = format!("{path}.peering_connections[{i}]");
                self.warnings.push(Diagnostic::new(pcx.pos, dpath, msg));
            }
            out.push(Some(PeeringDef {
                name: name.clone(),
                peer_vpc,
                accepted,
            }));
        }
        out.into_iter().collect()
    }

    /// Why VPC `me`'s connection `name` to `peer` contradicts another declaration of the same
    /// name: the peer declares it towards a third VPC, or a third VPC declares it towards
    /// `me` (each side of such a pair is reported at its own `peer_vpc`).
    fn peering_clashes(&self, me: &str, name: &str, peer: &str) -> Vec<String> {
        let same = self.globals.peerings.iter().filter(|d| d.name == name);
        same.filter_map(|d| {
            if d.vpc == peer && d.peer != me {
                Some(format!(
                    "VPC '{peer}' declares peering connection '{name}' with peer_vpc '{}' \
                     (line {}), not '{me}': both sides must name each other",
                    d.peer, d.pos.line
                ))
            } else if d.peer == me && d.vpc != peer {
                Some(format!(
                    "VPC '{}' declares peering connection '{name}' with peer_vpc '{me}' \
                     (line {}), but here it connects to '{peer}': both sides must name each \
                     other",
                    d.vpc, d.pos.line
                ))
            } else {
                None
            }
        })
        .collect()
    }

    /// `sg:VPC/NAME` (the text after `sg:`): a group of VPC `VPC`, which must be a peer of
    /// VPC `me` over an accepted peering connection.
    pub(super) fn peer_group_ref(
        &mut self,
        reference: &Loc<String>,
        path: &str,
        me: &str,
    ) -> Option<SgPeer> {
        let (vpc, group) = reference.value.split_once('/')?;
        let what = format!("'{SG_REF}{}'", reference.value);
        let reason = if vpc == me {
            Some(format!(
                "{what} names a group of this VPC: write '{SG_REF}{group}'"
            ))
        } else if !self.globals.vpc_index.contains_key(vpc) {
            Some(format!("{what}: unknown VPC '{vpc}'"))
        } else if let Some(pcx) = self.globals.unaccepted(me, vpc) {
            Some(format!(
                "{what}: peering connection '{pcx}' with VPC '{vpc}' is not accepted (VPC \
                 '{vpc}' does not declare it towards '{me}'); a peer's groups are only \
                 visible over an accepted peering connection"
            ))
        } else if !self.globals.peered(me, vpc) {
            Some(format!(
                "{what}: VPC '{me}' has no peering connection with VPC '{vpc}'; a peer's \
                 groups are only visible over an accepted peering connection"
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            self.err(reference.pos, path, reason);
            return None;
        }
        let v = self.globals.vpc_index[vpc];
        match self.globals.groups[v].get(group) {
            Some(&g) => Some(SgPeer::PeerGroup { vpc: v, group: g }),
            None => {
                let msg = format!("{what}: unknown security group in VPC '{vpc}': '{group}'");
                self.err(reference.pos, path, msg);
                None
            }
        }
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

impl Globals {
    /// Whether `peer` declares connection `name` towards `me` (then `me`'s declaration of
    /// `name` towards `peer` is accepted).
    fn accepted(&self, me: &str, name: &str, peer: &str) -> bool {
        self.peerings
            .iter()
            .any(|d| d.vpc == peer && d.name == name && d.peer == me)
    }

    /// Whether `me` and `peer` have an accepted peering connection.
    fn peered(&self, me: &str, peer: &str) -> bool {
        self.peerings
            .iter()
            .any(|d| d.vpc == me && d.peer == peer && self.accepted(me, &d.name, peer))
    }

    /// A connection `me` declares towards `peer` that `peer` does not, when there is no
    /// accepted one between them.
    fn unaccepted(&self, me: &str, peer: &str) -> Option<&str> {
        if self.peered(me, peer) {
            return None;
        }
        self.peerings
            .iter()
            .find(|d| d.vpc == me && d.peer == peer)
            .map(|d| d.name.as_str())
    }
}
