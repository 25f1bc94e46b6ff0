//! Flow log records and their text form: the AWS version 2 default format
//! (`version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start
//! end action log-status`) or a custom `${field}` list, `-` for a value that does not apply.

use std::{fmt::Write as _, net::IpAddr};

/// Fields of the AWS v2 default flow log record, in order.
pub const DEFAULT_FLOW_LOG_FIELDS: [&str; 14] = [
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
];
/// Further AWS flow log fields (v3-v5) a custom format may use.
pub const EXTRA_FLOW_LOG_FIELDS: [&str; 15] = [
    "vpc-id",
    "subnet-id",
    "instance-id",
    "tcp-flags",
    "type",
    "pkt-srcaddr",
    "pkt-dstaddr",
    "region",
    "az-id",
    "sublocation-type",
    "sublocation-id",
    "pkt-src-aws-service",
    "pkt-dst-aws-service",
    "flow-direction",
    "traffic-path",
];

/// AWS's `log-status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStatus {
    /// Data logged normally.
    Ok,
    /// No traffic to or from the interface during the interval.
    NoData,
    /// Some records were skipped during the interval (the datapath could not record them).
    SkipData,
}

impl LogStatus {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::NoData => "NODATA",
            Self::SkipData => "SKIPDATA",
        }
    }
}

/// `flow-direction`, relative to the interface the record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }
}

/// The traffic of one flow: present in `OK` records, absent in NODATA/SKIPDATA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Traffic {
    /// Addresses as the interface sees them.
    pub srcaddr: IpAddr,
    pub dstaddr: IpAddr,
    /// `None` where ports do not apply (ICMP and other protocols).
    pub srcport: Option<u16>,
    pub dstport: Option<u16>,
    pub protocol: u8,
    pub packets: u64,
    pub bytes: u64,
    /// `true` for ACCEPT, `false` for REJECT.
    pub accepted: bool,
    pub direction: Direction,
    /// The original (packet-level) addresses of the traffic.
    pub pkt_srcaddr: IpAddr,
    pub pkt_dstaddr: IpAddr,
    /// OR of the TCP flags seen (TCP only).
    pub tcp_flags: Option<u8>,
    /// AWS `traffic-path` (egress only): 1 within the VPC, 8 through an internet gateway.
    pub traffic_path: Option<u8>,
}

/// One flow log record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub account_id: String,
    pub interface_id: String,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub instance_id: Option<String>,
    /// Unix seconds.
    pub start: u64,
    pub end: u64,
    pub status: LogStatus,
    /// `None` for NODATA / SKIPDATA.
    pub traffic: Option<Traffic>,
}

/// The flow log version of the default format.
pub const VERSION: u8 = 2;

/// The flow log version that introduced field `name` (AWS user guide, "Available fields").
pub fn field_version(name: &str) -> u8 {
    match name {
        "vpc-id" | "subnet-id" | "instance-id" | "tcp-flags" | "type" | "pkt-srcaddr"
        | "pkt-dstaddr" => 3,
        "region" | "az-id" | "sublocation-type" | "sublocation-id" => 4,
        "pkt-src-aws-service" | "pkt-dst-aws-service" | "flow-direction" | "traffic-path" => 5,
        _ => VERSION,
    }
}

/// A format's `version`: as AWS writes it, the highest version among its fields.
pub fn format_version(fields: &[String]) -> u8 {
    fields
        .iter()
        .map(|f| field_version(f))
        .max()
        .unwrap_or(VERSION)
}

/// `-`, the value of a field that does not apply.
const NONE: &str = "-";

impl Record {
    /// The value of the AWS field `name` (`-` when it does not apply or is unknown) in a
    /// format of flow log version `version`.
    pub fn field(&self, name: &str, version: u8) -> String {
        let t = self.traffic.as_ref();
        let opt = |v: Option<String>| v.unwrap_or_else(|| NONE.to_owned());
        match name {
            "version" => version.to_string(),
            "account-id" => self.account_id.clone(),
            "interface-id" => self.interface_id.clone(),
            "srcaddr" => opt(t.map(|t| t.srcaddr.to_string())),
            "dstaddr" => opt(t.map(|t| t.dstaddr.to_string())),
            "srcport" => opt(t.and_then(|t| t.srcport).map(|p| p.to_string())),
            "dstport" => opt(t.and_then(|t| t.dstport).map(|p| p.to_string())),
            "protocol" => opt(t.map(|t| t.protocol.to_string())),
            "packets" => opt(t.map(|t| t.packets.to_string())),
            "bytes" => opt(t.map(|t| t.bytes.to_string())),
            "start" => self.start.to_string(),
            "end" => self.end.to_string(),
            "action" => opt(t.map(|t| if t.accepted { "ACCEPT" } else { "REJECT" }.to_owned())),
            "log-status" => self.status.name().to_owned(),
            "vpc-id" => opt(self.vpc_id.clone()),
            "subnet-id" => opt(self.subnet_id.clone()),
            "instance-id" => opt(self.instance_id.clone()),
            "tcp-flags" => opt(t.and_then(|t| t.tcp_flags).map(|f| f.to_string())),
            "type" => opt(t.map(|t| if t.srcaddr.is_ipv6() { "IPv6" } else { "IPv4" }.to_owned())),
            "pkt-srcaddr" => opt(t.map(|t| t.pkt_srcaddr.to_string())),
            "pkt-dstaddr" => opt(t.map(|t| t.pkt_dstaddr.to_string())),
            "flow-direction" => opt(t.map(|t| t.direction.name().to_owned())),
            "traffic-path" => opt(t.and_then(|t| t.traffic_path).map(|p| p.to_string())),
            // region, az-id, sublocation-*, pkt-*-aws-service: nothing here they could name.
            _ => NONE.to_owned(),
        }
    }

    /// The record as one line (no newline) with `fields` in order, space-separated.
    pub fn format(&self, fields: &[String]) -> String {
        let version = format_version(fields);
        let mut line = String::new();
        for (i, name) in fields.iter().enumerate() {
            if i > 0 {
                line.push(' ');
            }
            let _ = write!(line, "{}", self.field(name, version));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn default_fields() -> Vec<String> {
        DEFAULT_FLOW_LOG_FIELDS.map(str::to_owned).to_vec()
    }

    fn tcp_record() -> Record {
        Record {
            account_id: "-".into(),
            interface_id: "eni-web".into(),
            vpc_id: Some("prod".into()),
            subnet_id: Some("public".into()),
            instance_id: Some("web".into()),
            start: 1_700_000_000,
            end: 1_700_000_059,
            status: LogStatus::Ok,
            traffic: Some(Traffic {
                srcaddr: Ipv4Addr::new(10, 0, 1, 10).into(),
                dstaddr: Ipv4Addr::new(10, 0, 2, 20).into(),
                srcport: Some(40000),
                dstport: Some(443),
                protocol: 6,
                packets: 12,
                bytes: 3456,
                accepted: true,
                direction: Direction::Egress,
                pkt_srcaddr: Ipv4Addr::new(10, 0, 1, 10).into(),
                pkt_dstaddr: Ipv4Addr::new(10, 0, 2, 20).into(),
                tcp_flags: Some(0x13),
                traffic_path: Some(1),
            }),
        }
    }

    #[test]
    fn default_format_is_aws_v2() {
        assert_eq!(
            tcp_record().format(&default_fields()),
            "2 - eni-web 10.0.1.10 10.0.2.20 40000 443 6 12 3456 1700000000 1700000059 ACCEPT OK"
        );
    }

    #[test]
    fn fields_that_do_not_apply_are_dashes() {
        let mut r = tcp_record();
        if let Some(t) = r.traffic.as_mut() {
            t.protocol = 1;
            t.srcport = None;
            t.dstport = None;
            t.tcp_flags = None;
            t.accepted = false;
        }
        assert_eq!(
            r.format(&default_fields()),
            "2 - eni-web 10.0.1.10 10.0.2.20 - - 1 12 3456 1700000000 1700000059 REJECT OK"
        );
        let nodata = Record {
            status: LogStatus::NoData,
            traffic: None,
            ..tcp_record()
        };
        assert_eq!(
            nodata.format(&default_fields()),
            "2 - eni-web - - - - - - - 1700000000 1700000059 - NODATA"
        );
    }

    #[test]
    fn the_version_is_the_highest_among_the_fields() {
        let fields = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        assert_eq!(format_version(&default_fields()), 2);
        assert_eq!(
            format_version(&fields(&["version", "srcaddr", "vpc-id"])),
            3
        );
        assert_eq!(
            format_version(&fields(&["version", "az-id", "tcp-flags"])),
            4
        );
        assert_eq!(
            format_version(&fields(&["traffic-path", "version", "type"])),
            5
        );
        let line = tcp_record().format(&fields(&["version", "instance-id", "flow-direction"]));
        assert_eq!(line, "5 web egress");
    }

    #[test]
    fn custom_format_fills_the_extra_fields() {
        let fields: Vec<String> = [
            "interface-id",
            "vpc-id",
            "subnet-id",
            "instance-id",
            "tcp-flags",
            "type",
            "pkt-srcaddr",
            "pkt-dstaddr",
            "flow-direction",
            "traffic-path",
            "region",
            "log-status",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(
            tcp_record().format(&fields),
            "eni-web prod public web 19 IPv4 10.0.1.10 10.0.2.20 egress 1 - OK"
        );
        let skip = Record {
            status: LogStatus::SkipData,
            traffic: None,
            instance_id: None,
            ..tcp_record()
        };
        assert_eq!(
            skip.format(&fields),
            "eni-web prod public - - - - - - - - SKIPDATA"
        );
    }
}
