//! Network ACLs: rule numbers, actions and the traffic each rule matches.

use super::*;

impl Validator {
    pub(super) fn network_acls(
        &mut self,
        vpc: &model::Vpc,
        path: &str,
    ) -> Option<Vec<NetworkAclDef>> {
        let mut out = Vec::new();
        for (i, acl) in vpc.network_acls.iter().enumerate() {
            let apath = format!("{path}.network_acls[{i}]");
            let inbound = self.acl_rules(&acl.value.inbound, &format!("{apath}.inbound"), acl.pos);
            let outbound =
                self.acl_rules(&acl.value.outbound, &format!("{apath}.outbound"), acl.pos);
            out.push(resolve(|| {
                Some(NetworkAclDef {
                    name: acl.value.name.value.clone(),
                    implicit: false,
                    inbound: inbound?,
                    outbound: outbound?,
                })
            }));
        }
        out.into_iter().collect()
    }

    /// One direction of an ACL; returns the rules sorted by number.
    pub(super) fn acl_rules(
        &mut self,
        rules: &[Loc<model::AclRule>],
        path: &str,
        acl_pos: Pos,
    ) -> Option<Vec<AclRuleDef>> {
        if rules.len() > MAX_ACL_RULES {
            let direction = path.rsplit('.').next().unwrap_or(path);
            let msg = format!(
                "{} {direction} rules: the datapath holds at most {MAX_ACL_RULES} per direction",
                rules.len()
            );
            self.err(acl_pos, path, msg);
        }
        let mut numbers: HashMap<i64, u32> = HashMap::new();
        let mut out = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let rule = &rule.value;
            let rpath = format!("{path}[{i}]");
            let number = self.rule_number(&rule.rule, &format!("{rpath}.rule"), &mut numbers);
            let traffic = self.traffic(rule, &rpath);
            let cidr = self.acl_cidr(&rule.cidr, &format!("{rpath}.cidr"));
            out.push(resolve(|| {
                Some(AclRuleDef {
                    number: number?,
                    traffic: traffic?,
                    cidr: cidr?,
                    allow: rule.action.value == model::Action::Allow,
                })
            }));
        }
        let mut out: Vec<AclRuleDef> = out.into_iter().collect::<Option<_>>()?;
        out.sort_by_key(|r| r.number);
        Some(out)
    }

    /// A rule's CIDR; a prefix list is refused by name (as AWS does), not as a bad CIDR.
    fn acl_cidr(&mut self, cidr: &Loc<String>, path: &str) -> Option<ipnet::IpNet> {
        if prefix_lists::prefix_list_name(&cidr.value).is_some() {
            let msg = format!(
                "network ACLs cannot reference prefix lists: give a CIDR instead of '{}'",
                cidr.value
            );
            self.err(cidr.pos, path, msg);
            return None;
        }
        self.ip_cidr(cidr, path)
    }

    pub(super) fn rule_number(
        &mut self,
        n: &Loc<i64>,
        path: &str,
        seen: &mut HashMap<i64, u32>,
    ) -> Option<u16> {
        if !RULE_NUMBERS.contains(&n.value) {
            let msg = format!("rule number must be between 1 and 32766, got {}", n.value);
            self.err(n.pos, path, msg);
            return None;
        }
        if let Some(line) = seen.get(&n.value) {
            let msg = format!(
                "duplicate rule number {} in this direction (also at line {line})",
                n.value
            );
            self.err(n.pos, path, msg);
            return None;
        }
        seen.insert(n.value, n.pos.line);
        u16::try_from(n.value).ok()
    }
}
