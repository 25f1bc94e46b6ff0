//! Prefix lists: named sets of CIDRs, and the references (`pl:NAME`) that may use them.
//! Security group rules may name a list as their source or destination; network ACL rules may
//! not (as in AWS), and a route may only with a gateway endpoint as its target.

use super::*;

impl Validator {
    /// The VPC's prefix lists: unique names, at least one CIDR each, no CIDR twice in a list.
    /// Returns the names (for references) and the lists if every one is valid.
    pub(super) fn prefix_lists(
        &mut self,
        vpc: &model::Vpc,
        path: &str,
    ) -> (Names, Option<Vec<PrefixListDef>>) {
        let lpath = format!("{path}.prefix_lists");
        let names = self.unique_names(
            vpc.prefix_lists.iter().map(|l| &l.value.name),
            &lpath,
            "prefix list",
        );
        let lists: Vec<Option<PrefixListDef>> = vpc
            .prefix_lists
            .iter()
            .enumerate()
            .map(|(i, list)| self.prefix_list(&list.value, &format!("{lpath}[{i}]")))
            .collect();
        (names, lists.into_iter().collect())
    }

    fn prefix_list(&mut self, list: &model::PrefixList, path: &str) -> Option<PrefixListDef> {
        let cpath = format!("{path}.cidrs");
        let entries = &list.cidrs;
        if entries.value.is_empty() {
            self.err(entries.pos, cpath, "a prefix list needs at least one CIDR");
            return None;
        }
        let mut seen: HashMap<Ipv4Net, u32> = HashMap::new();
        let mut cidrs = Vec::new();
        for (j, entry) in entries.value.iter().enumerate() {
            let epath = format!("{cpath}[{j}]");
            let net = self.cidr(entry, &epath);
            if let Some(net) = net {
                if let Some(line) = seen.get(&net) {
                    let msg = format!(
                        "duplicate CIDR {net} in prefix list '{}' (also at line {line})",
                        list.name.value
                    );
                    self.err(entry.pos, epath, msg);
                } else {
                    seen.insert(net, entry.pos.line);
                }
            }
            cidrs.push(net);
        }
        Some(PrefixListDef {
            name: list.name.value.clone(),
            cidrs: cidrs.into_iter().collect::<Option<_>>()?,
        })
    }

    /// A `pl:NAME` reference (`reference` is the whole value, `name` the part after `pl:`):
    /// the index of the VPC's list of that name.
    pub(super) fn prefix_list_ref(
        &mut self,
        reference: &Loc<String>,
        name: &str,
        path: &str,
        vpc: &str,
        lists: &Names,
    ) -> Option<usize> {
        if let Some((i, _)) = lists.get(name) {
            return Some(*i);
        }
        let msg = format!("unknown prefix list in VPC '{vpc}': '{name}'");
        self.err(reference.pos, path, msg);
        None
    }
}

/// The list name of a `pl:NAME` reference, if `value` is one.
pub(super) fn prefix_list_name(value: &str) -> Option<&str> {
    value.strip_prefix(PL_REF)
}
