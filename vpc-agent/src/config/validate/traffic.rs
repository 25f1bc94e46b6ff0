//! The traffic a rule matches (network ACLs and security groups): protocol, ports, ICMP type and code.

use super::*;

impl Validator {
    /// Protocol, ports and ICMP type/code of any rule.
    pub(super) fn traffic(&mut self, spec: &dyn TrafficSpec, path: &str) -> Option<TrafficMatch> {
        let protocol = self.protocol(spec.protocol(), &format!("{path}.protocol"))?;
        let ports = match spec.ports() {
            None => Some(None),
            Some(p) => self.ports(p, &format!("{path}.ports"), protocol).map(Some),
        };
        let (icmp_type, icmp_code) = match spec.icmp() {
            None => (Some(None), Some(None)),
            Some(icmp) => self.icmp(icmp, &format!("{path}.icmp"), protocol),
        };
        Some(TrafficMatch {
            protocol,
            ports: ports?,
            icmp_type: icmp_type?,
            icmp_code: icmp_code?,
        })
    }

    /// `Some(None)` is `all`.
    pub(super) fn protocol(&mut self, p: &Loc<model::Text>, path: &str) -> Option<Option<u8>> {
        let text = p.value.0.as_str();
        match text {
            "all" | "-1" => return Some(None),
            "tcp" => return Some(Some(PROTO_TCP)),
            "udp" => return Some(Some(PROTO_UDP)),
            "icmp" => return Some(Some(PROTO_ICMP)),
            "icmpv6" => return Some(Some(PROTO_ICMPV6)),
            _ => {}
        }
        let msg = match text.parse::<u64>() {
            Ok(n) => match u8::try_from(n) {
                Ok(n) => return Some(Some(n)),
                Err(_) => format!("protocol number must be between 0 and 255, got {n}"),
            },
            Err(_) => {
                format!(
                    "unknown protocol '{text}': expected tcp, udp, icmp, icmpv6, all or a number 0-255"
                )
            }
        };
        self.err(p.pos, path, msg);
        None
    }

    pub(super) fn ports(
        &mut self,
        p: &Loc<model::Text>,
        path: &str,
        proto: Option<u8>,
    ) -> Option<(u16, u16)> {
        if !matches!(proto, Some(PROTO_TCP | PROTO_UDP)) {
            self.err(
                p.pos,
                path,
                "ports are only allowed with protocol tcp or udp",
            );
            return None;
        }
        self.port_range(p, path)
    }

    /// `N` or `A-B` with ports 1-65535, A <= B.
    pub(super) fn port_range(&mut self, p: &Loc<model::Text>, path: &str) -> Option<(u16, u16)> {
        let text = p.value.0.as_str();
        let (lo, hi) = text.split_once('-').unwrap_or((text, text));
        let (Ok(lo), Ok(hi)) = (lo.trim().parse::<u64>(), hi.trim().parse::<u64>()) else {
            let msg = format!("invalid ports '{text}': expected N or A-B");
            self.err(p.pos, path, msg);
            return None;
        };
        for n in [lo, hi] {
            if !(1..=65535).contains(&n) {
                let msg = format!("port {n} is out of range 1-65535");
                self.err(p.pos, path, msg);
                return None;
            }
        }
        if lo > hi {
            let msg = format!(
                "port range {lo}-{hi} is reversed (the first port must not exceed the second)"
            );
            self.err(p.pos, path, msg);
            return None;
        }
        Some((u16::try_from(lo).ok()?, u16::try_from(hi).ok()?))
    }

    /// ICMP (or ICMPv6) type and code: `Some(None)` is any.
    pub(super) fn icmp(
        &mut self,
        icmp: &Loc<model::Icmp>,
        path: &str,
        proto: Option<u8>,
    ) -> (Option<Option<u8>>, Option<Option<u8>>) {
        if !matches!(proto, Some(PROTO_ICMP | PROTO_ICMPV6)) {
            let msg = "icmp type and code are only allowed with protocol icmp or icmpv6";
            self.err(icmp.pos, path, msg);
            return (None, None);
        }
        let mut field = |v: &Option<Loc<i64>>, name: &str, what: &str| match v {
            None => Some(None),
            Some(Loc { value: -1, .. }) => Some(None),
            Some(Loc { value, pos }) => match u8::try_from(*value) {
                Ok(n) => Some(Some(n)),
                Err(_) => {
                    let msg = format!("ICMP {what} must be -1 (any) or 0-255, got {value}");
                    self.err(*pos, format!("{path}.{name}"), msg);
                    None
                }
            },
        };
        let t = field(&icmp.value.icmp_type, "type", "type");
        let c = field(&icmp.value.code, "code", "code");
        (t, c)
    }
}
