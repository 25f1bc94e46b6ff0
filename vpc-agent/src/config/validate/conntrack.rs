//! Connection tracking: idle timeouts and the NAT port range.

use super::*;

impl Validator {
    /// The timeouts the file sets over the AWS defaults; `None` if one is out of range.
    pub(super) fn connection_tracking(
        &mut self,
        ct: &model::ConnectionTracking,
        path: &str,
    ) -> Option<CtTimeouts> {
        let mut out = DEFAULT_TIMEOUTS;
        let fields = [
            (
                "tcp_established_timeout",
                &ct.tcp_established_timeout,
                TCP_ESTABLISHED_TIMEOUTS,
                &mut out.tcp_established,
            ),
            (
                "tcp_transitory_timeout",
                &ct.tcp_transitory_timeout,
                TIMEOUTS,
                &mut out.tcp_transitory,
            ),
            (
                "tcp_closing_timeout",
                &ct.tcp_closing_timeout,
                TIMEOUTS,
                &mut out.tcp_closing,
            ),
            ("udp_timeout", &ct.udp_timeout, TIMEOUTS, &mut out.udp),
            (
                "udp_stream_timeout",
                &ct.udp_stream_timeout,
                TIMEOUTS,
                &mut out.udp_stream,
            ),
            ("icmp_timeout", &ct.icmp_timeout, TIMEOUTS, &mut out.icmp),
            ("other_timeout", &ct.other_timeout, TIMEOUTS, &mut out.other),
            (
                "nat_idle_timeout",
                &ct.nat_idle_timeout,
                TIMEOUTS,
                &mut out.nat,
            ),
        ];
        let mut valid = true;
        for (name, value, range, slot) in fields {
            let Some(Loc { value, pos }) = value else {
                continue;
            };
            match u32::try_from(*value).ok().filter(|_| range.contains(value)) {
                Some(seconds) => *slot = seconds,
                None => {
                    let msg = format!(
                        "{name} must be between {} and {} seconds, got {value}",
                        range.start(),
                        range.end()
                    );
                    self.err(*pos, format!("{path}.{name}"), msg);
                    valid = false;
                }
            }
        }
        valid.then_some(out)
    }
}
