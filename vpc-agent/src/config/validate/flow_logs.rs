//! Flow logs: destinations, traffic types, scopes and formats.

use super::*;

impl Validator {
    pub(super) fn flow_log_list(
        &mut self,
        file: &ConfigFile,
        list: &Loc<model::FlowLogList>,
    ) -> Option<Vec<FlowLogConfig>> {
        let mut out = Vec::new();
        let mut valid = true;
        for (i, log) in list.value.logs.iter().enumerate() {
            let path = if list.value.list {
                format!("flow_logs[{i}]")
            } else {
                "flow_logs".to_owned()
            };
            match self.flow_logs(file, &log.value, &path) {
                Some(config) => out.push(config),
                None => valid = false,
            }
        }
        if let Some(first) = out.first() {
            for (i, (config, log)) in out.iter().zip(&list.value.logs).enumerate().skip(1) {
                if config.aggregation_interval != first.aggregation_interval {
                    let pos = log
                        .value
                        .aggregation_interval
                        .as_ref()
                        .map_or(log.pos, |a| a.pos);
                    let msg = "every flow log must have the same aggregation_interval (the \
                               counters are drained once for all)";
                    self.err(pos, format!("flow_logs[{i}].aggregation_interval"), msg);
                    valid = false;
                }
            }
        }
        valid.then_some(out)
    }

    pub(super) fn flow_log_traffic_type(
        &mut self,
        t: &Loc<String>,
        path: &str,
    ) -> Option<TrafficType> {
        match t.value.as_str() {
            "ACCEPT" => Some(TrafficType::Accept),
            "REJECT" => Some(TrafficType::Reject),
            "ALL" => Some(TrafficType::All),
            other => {
                let msg = format!("traffic_type must be ACCEPT, REJECT or ALL, got '{other}'");
                self.err(t.pos, path, msg);
                None
            }
        }
    }

    /// A scope's names, each checked against the file's VPCs, subnets and instances.
    pub(super) fn flow_log_scope(
        &mut self,
        file: &ConfigFile,
        scope: &Loc<model::FlowLogScope>,
        path: &str,
    ) -> Option<FlowLogScope> {
        let s = &scope.value;
        let vpcs: Vec<&model::Vpc> = file
            .vpcs
            .iter()
            .map(|v| &v.value)
            .filter(|v| s.vpc.as_ref().is_none_or(|n| n.value == v.name.value))
            .collect();
        if let Some(name) = &s.vpc
            && vpcs.is_empty()
        {
            self.err(
                name.pos,
                format!("{path}.vpc"),
                format!("no VPC '{}'", name.value),
            );
            return None;
        }
        let (what, name, found): (&str, &Loc<String>, Vec<&str>) = match (&s.subnet, &s.instance) {
            (Some(_), Some(i)) => {
                let msg = "a scope is a VPC, a subnet or an instance, not both";
                self.err(i.pos, format!("{path}.instance"), msg);
                return None;
            }
            (Some(n), None) => (
                "subnet",
                n,
                vpcs.iter()
                    .filter(|v| v.subnets.iter().any(|x| x.value.name.value == n.value))
                    .map(|v| v.name.value.as_str())
                    .collect(),
            ),
            (None, Some(n)) => (
                "instance",
                n,
                vpcs.iter()
                    .filter(|v| v.instances.iter().any(|x| x.value.name.value == n.value))
                    .map(|v| v.name.value.as_str())
                    .collect(),
            ),
            (None, None) => {
                return Some(FlowLogScope {
                    vpc: s.vpc.as_ref().map(|v| v.value.clone()),
                    ..FlowLogScope::default()
                });
            }
        };
        let vpc = match found.as_slice() {
            [vpc] => (*vpc).to_owned(),
            [] => {
                let msg = format!("no {what} '{}'", name.value);
                self.err(name.pos, format!("{path}.{what}"), msg);
                return None;
            }
            _ => {
                let msg = format!(
                    "{what} '{}' is in several VPCs ({}): name the vpc too",
                    name.value,
                    found.join(", ")
                );
                self.err(name.pos, format!("{path}.{what}"), msg);
                return None;
            }
        };
        Some(FlowLogScope {
            vpc: Some(vpc),
            subnet: s.subnet.as_ref().map(|n| n.value.clone()),
            instance: s.instance.as_ref().map(|n| n.value.clone()),
        })
    }

    pub(super) fn flow_logs(
        &mut self,
        file: &ConfigFile,
        f: &model::FlowLogs,
        path: &str,
    ) -> Option<FlowLogConfig> {
        let interval = match &f.aggregation_interval {
            None => Some(DEFAULT_AGGREGATION_INTERVAL),
            Some(Loc {
                value: v @ (60 | 600),
                ..
            }) => u32::try_from(*v).ok(),
            Some(Loc { value, pos }) => {
                let msg = format!("aggregation_interval must be 60 or 600 seconds, got {value}");
                self.err(*pos, format!("{path}.aggregation_interval"), msg);
                None
            }
        };
        let destination = match &f.destination {
            None => Some(FlowLogDestination::Stdout),
            Some(d) => self.flow_log_destination(d, &format!("{path}.destination")),
        };
        let fields = match &f.format {
            None => Some(DEFAULT_FLOW_LOG_FIELDS.map(str::to_owned).to_vec()),
            Some(fmt) => self.flow_log_format(fmt, &format!("{path}.format")),
        };
        let traffic_type = match &f.traffic_type {
            None => Some(TrafficType::All),
            Some(t) => self.flow_log_traffic_type(t, &format!("{path}.traffic_type")),
        };
        let scope = match &f.scope {
            None => Some(FlowLogScope::default()),
            Some(scope) => self.flow_log_scope(file, scope, &format!("{path}.scope")),
        };
        Some(FlowLogConfig {
            aggregation_interval: interval?,
            destination: destination?,
            fields: fields?,
            traffic_type: traffic_type?,
            scope: scope?,
        })
    }

    pub(super) fn flow_log_destination(
        &mut self,
        d: &Loc<String>,
        path: &str,
    ) -> Option<FlowLogDestination> {
        if d.value == "stdout" {
            return Some(FlowLogDestination::Stdout);
        }
        if let Some(target) = d.value.strip_prefix("ipfix:") {
            return match parse_host_port(target) {
                Some((host, port)) => Some(FlowLogDestination::Ipfix { host, port }),
                None => {
                    let msg = format!("an IPFIX collector is ipfix:HOST:PORT, got '{}'", d.value);
                    self.err(d.pos, path, msg);
                    None
                }
            };
        }
        match d.value.strip_prefix("file:") {
            Some(p) if p.starts_with('/') => Some(FlowLogDestination::File(PathBuf::from(p))),
            Some(p) => {
                let msg = format!("a flow log file must be an absolute path, got '{p}'");
                self.err(d.pos, path, msg);
                None
            }
            None => {
                let msg = format!(
                    "destination must be 'stdout', 'file:/path' or 'ipfix:HOST:PORT', got '{}'",
                    d.value
                );
                self.err(d.pos, path, msg);
                None
            }
        }
    }

    pub(super) fn flow_log_format(&mut self, f: &Loc<String>, path: &str) -> Option<Vec<String>> {
        if f.value == "default" {
            return Some(DEFAULT_FLOW_LOG_FIELDS.map(str::to_owned).to_vec());
        }
        let mut fields = Vec::new();
        for token in f.value.split_whitespace() {
            let Some(name) = token.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
                let msg = format!(
                    "format must be 'default' or fields such as '${{srcaddr}} ${{dstaddr}}', got '{token}'"
                );
                self.err(f.pos, path, msg);
                return None;
            };
            if !DEFAULT_FLOW_LOG_FIELDS.contains(&name) && !EXTRA_FLOW_LOG_FIELDS.contains(&name) {
                self.err(f.pos, path, format!("unknown flow log field '{token}'"));
                return None;
            }
            fields.push(name.to_owned());
        }
        if fields.is_empty() {
            self.err(f.pos, path, "format must name at least one field");
            return None;
        }
        Some(fields)
    }
}
