//! Security groups: their rules and the peers (addresses, other groups, prefix lists) they
//! name.

use super::*;

impl Validator {
    pub(super) fn security_groups(
        &mut self,
        vpc: &model::Vpc,
        path: &str,
        groups: &Names,
        lists: &Names,
    ) -> Option<Vec<SecurityGroupDef>> {
        let vpc_name = vpc.name.value.as_str();
        let default_sg = groups
            .get(DEFAULT_SG)
            .map_or(vpc.security_groups.len(), |(i, _)| *i);
        let mut out = Vec::new();
        for (i, sg) in vpc.security_groups.iter().enumerate() {
            let sg = &sg.value;
            let gpath = format!("{path}.security_groups[{i}]");
            let rule = |me: &mut Self,
                        spec: &dyn TrafficSpec,
                        peer: &Loc<String>,
                        rpath: String,
                        field: &str| {
                let traffic = me.traffic(spec, &rpath);
                let ppath = format!("{rpath}.{field}");
                let peer = match peer.value.strip_prefix(SG_REF) {
                    Some(name) if name.contains('/') => {
                        let reference = Loc::new(name.to_owned(), peer.pos);
                        me.peer_group_ref(&reference, &ppath, vpc_name)
                    }
                    Some(name) => {
                        let name = Loc::new(name.to_owned(), peer.pos);
                        me.group_ref(&name, &ppath, vpc_name, groups, default_sg)
                            .map(SgPeer::Group)
                    }
                    None => me.address_peer(peer, &ppath, vpc_name, lists),
                };
                Some(SgRuleDef {
                    traffic: traffic?,
                    peer: peer?,
                })
            };
            let inbound: Vec<Option<SgRuleDef>> = sg
                .inbound
                .iter()
                .enumerate()
                .map(|(j, r)| {
                    rule(
                        self,
                        &r.value,
                        &r.value.source,
                        format!("{gpath}.inbound[{j}]"),
                        "source",
                    )
                })
                .collect();
            let outbound: Option<Vec<Option<SgRuleDef>>> = sg.outbound.as_ref().map(|rules| {
                rules
                    .iter()
                    .enumerate()
                    .map(|(j, r)| {
                        rule(
                            self,
                            &r.value,
                            &r.value.destination,
                            format!("{gpath}.outbound[{j}]"),
                            "destination",
                        )
                    })
                    .collect()
            });
            out.push(resolve(|| {
                Some(SecurityGroupDef {
                    name: sg.name.value.clone(),
                    implicit: false,
                    inbound: inbound.into_iter().collect::<Option<_>>()?,
                    outbound: match outbound {
                        // Omitted: everything, both families (the format's default, see `allow_all`).
                        None => SgRuleDef::allow_all(vpc.ipv6_cidr_block.is_some()),
                        Some(rules) => rules.into_iter().collect::<Option<_>>()?,
                    },
                })
            }));
        }
        out.into_iter().collect()
    }

    /// A peer that is not a group: a prefix list (`pl:NAME`) or a CIDR.
    fn address_peer(
        &mut self,
        peer: &Loc<String>,
        path: &str,
        vpc: &str,
        lists: &Names,
    ) -> Option<SgPeer> {
        match prefix_lists::prefix_list_name(&peer.value) {
            Some(name) => self
                .prefix_list_ref(peer, name, path, vpc, lists)
                .map(SgPeer::PrefixList),
            None => self.ip_cidr(peer, path).map(SgPeer::Cidr),
        }
    }
}
