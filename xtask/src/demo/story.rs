//! The story: numbered steps of real traffic, each stating what must happen and checking it
//! from both sides: an allowed connection is answered and the server saw the expected client
//! address (it echoes the address it saw); a refused one gets no answer and the router's drop
//! counter for the expected reason went up.

use std::{net::IpAddr, time::Duration};

use anyhow::{Context as _, Result, bail};
use vpc_common::DropReason;
use vpc_tests::{
    agent::cli,
    netns::NetNs,
    topology::{INTERNET_CLIENT_IP, INTERNET_IP},
    traffic::{Server, ping, retry, tcp_request},
};

use super::{
    interrupt,
    topology::{INTERNET_IP6, Vpc},
};

/// How much to print: the whole story, or (`--check`) only the steps and their checks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Show {
    Story,
    Terse,
}

impl Show {
    /// A line of explanation (the story only).
    pub fn line(self, text: &str) {
        if self == Self::Story {
            println!("      {text}");
        }
    }
}

/// The words of the definition worth showing: addresses, rules, routes.
const KEY_WORDS: &[&str] = &[
    "cidr",
    "_ip:",
    "ipv6_addresses:",
    "target:",
    "source:",
    "deny",
    "interface:",
];

/// Prints the definition's name and, in the story, its key lines with their numbers.
pub fn introduce(name: &str, yaml: &str, show: Show) {
    println!("definition: {name}");
    if show == Show::Story {
        for (n, line) in yaml.lines().enumerate() {
            let text = line.trim_start();
            if !text.starts_with('#') && KEY_WORDS.iter().any(|w| text.contains(w)) {
                println!("  {:>3} | {}", n + 1, line.trim_end());
            }
        }
        println!("(the other lines: names, security group and route table assignments, flow logs)");
    }
    println!("building the VPC in network namespaces:");
}

/// One side of a connection: who, in which namespace, from which address (IPv6 in brackets,
/// as socat takes it).
struct End<'a> {
    who: String,
    ns: &'a NetNs,
    ip: String,
}

/// `[2001:db8::1]`: an IPv6 address as socat takes it.
fn bracket(ip: impl std::fmt::Display) -> String {
    format!("[{ip}]")
}

/// The address a server's answer says it saw the client come from: `peer=A.B.C.D` or
/// `peer=[ADDR]:PORT` (IPv6, in full form).
fn peer(answer: &str) -> Option<IpAddr> {
    let saw = answer.strip_prefix("peer=")?;
    match saw.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?.parse().ok(),
        None => saw.parse().ok(),
    }
}

impl Vpc {
    fn end(&self, name: &str) -> Result<End<'_>> {
        let host = self.host(name)?;
        Ok(End {
            who: format!("{name} ({})", host.ip),
            ns: &host.ns,
            ip: host.ip.clone(),
        })
    }

    /// Instance `name` by its (first) IPv6 address.
    fn end6(&self, name: &str) -> Result<End<'_>> {
        let host = self.host(name)?;
        let ip = self
            .def()
            .instances
            .iter()
            .find(|i| i.name == name)
            .and_then(|i| i.ipv6_addresses.first())
            .with_context(|| format!("the story needs instance {name} with an IPv6 address"))?;
        Ok(End {
            who: format!("{name} ({ip})"),
            ns: &host.ns,
            ip: bracket(ip),
        })
    }

    fn internet_server6(&self) -> End<'_> {
        End {
            who: format!("the internet server ({INTERNET_IP6})"),
            ns: &self.internet,
            ip: bracket(INTERNET_IP6),
        }
    }

    fn internet_server(&self) -> End<'_> {
        End {
            who: format!("the internet server ({INTERNET_IP})"),
            ns: &self.internet,
            ip: INTERNET_IP.into(),
        }
    }

    fn home(&self) -> End<'_> {
        End {
            who: format!("the home client ({INTERNET_CLIENT_IP})"),
            ns: &self.internet,
            ip: INTERNET_CLIENT_IP.into(),
        }
    }

    /// The drop counter for `reason` (from the pinned map, as `vpc-agent status` reads it).
    fn drops(&self, reason: DropReason) -> Result<u64> {
        let status =
            vpc_agent::inspect::status::collect(&self.bpffs.path).context("read drop counters")?;
        Ok(status.drops.get(reason.name()).copied().unwrap_or(0))
    }

    fn public_ip(&self, name: &str) -> Result<String> {
        self.def()
            .instances
            .iter()
            .find(|i| i.name == name)
            .and_then(|i| i.public_ip)
            .map(|ip| ip.to_string())
            .with_context(|| format!("the story needs instance {name} with a public IP"))
    }

    fn elastic_ip(&self) -> Result<String> {
        self.def()
            .nat_gateways
            .first()
            .map(|n| n.elastic_ip.to_string())
            .context("the story needs a NAT gateway")
    }
}

/// The checks of one step, printed as they are made.
struct Checks {
    show: Show,
    failed: usize,
}

impl Checks {
    fn expect(&mut self, ok: bool, what: &str) {
        println!("      {} {what}", if ok { "✓" } else { "✗" });
        self.failed += usize::from(!ok);
    }

    /// `from` connects to `dst:port` (where a server listens): answered, and the server saw
    /// the client as `seen_as` (an address, IPv6 with or without brackets).
    fn answered(&mut self, from: &End, dst: &str, port: u16, seen_as: &str) -> Result<()> {
        let answer = retry(|| tcp_request(from.ns, &from.ip, dst, port));
        self.expect(
            answer.is_some(),
            &format!("{} connects to {dst}:{port} and gets an answer", from.who),
        );
        let expected: IpAddr = seen_as
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .with_context(|| format!("not an address: {seen_as}"))?;
        let saw = answer.as_deref().and_then(peer);
        self.expect(
            saw == Some(expected),
            &format!(
                "the server saw the client as {expected} (it saw: {})",
                match (saw, answer.as_deref()) {
                    (Some(ip), _) => ip.to_string(),
                    (None, Some(other)) => format!("{other:?}"),
                    (None, None) => "nothing".into(),
                }
            ),
        );
        Ok(())
    }

    /// `from` connects to `dst:port` (where a server listens): no answer, and the router
    /// counted the drop under `reason`.
    fn refused(
        &mut self,
        vpc: &Vpc,
        from: &End,
        dst: &str,
        port: u16,
        reason: DropReason,
    ) -> Result<()> {
        let before = vpc.drops(reason)?;
        let answer = tcp_request(from.ns, &from.ip, dst, port)?;
        let after = vpc.drops(reason)?;
        self.expect(
            answer.is_none(),
            &format!(
                "{} connects to {dst}:{port}: no answer{}",
                from.who,
                answer.map_or(String::new(), |a| format!(" (but it got {a:?})"))
            ),
        );
        self.expect(
            after > before,
            &format!(
                "the router dropped it as {}: counter {before} -> {after}",
                reason.name()
            ),
        );
        Ok(())
    }
}

type StepFn = fn(&Vpc, &mut Checks) -> Result<()>;

/// The steps: title, and what runs and checks.
const STEPS: &[(&str, StepFn)] = &[
    (
        "The jumpbox (private subnet, no public IP) reaches the internet through the NAT gateway",
        nat_out,
    ),
    (
        "Nobody on the internet can open a connection to the jumpbox",
        internet_to_private,
    ),
    (
        "The jumpbox (private subnet) reaches an IPv6 internet server through the egress-only gateway; the internet cannot open a connection to it",
        eigw_out_only,
    ),
    (
        "web-1 serves the internet on its public IP (internet gateway, 1:1 NAT)",
        web_public,
    ),
    (
        "SSH to web-1 only from the home network 203.0.113.0/24 (security group web)",
        ssh_from_home,
    ),
    (
        "Security groups by reference: web-1 may SSH to the jumpbox (group jumpbox allows sg:web)",
        web_to_jumpbox,
    ),
    (
        "The network ACL blocks what a security group allows: web-1 -> db-1:5432",
        acl_over_sg,
    ),
];

fn nat_out(vpc: &Vpc, c: &mut Checks) -> Result<()> {
    let server = vpc.internet_server();
    let _http = Server::tcp(server.ns, &server.ip, 80)?;
    c.answered(&vpc.end("jumpbox")?, INTERNET_IP, 80, &vpc.elastic_ip()?)
}

fn internet_to_private(vpc: &Vpc, c: &mut Checks) -> Result<()> {
    let jumpbox = vpc.end("jumpbox")?;
    let _ssh = Server::tcp(jumpbox.ns, &jumpbox.ip, 22)?;
    let home = vpc.home();
    c.refused(vpc, &home, &jumpbox.ip, 22, DropReason::UplinkUnsolicited)?;
    c.refused(
        vpc,
        &home,
        &vpc.elastic_ip()?,
        22,
        DropReason::NatUnsolicited,
    )
}

fn eigw_out_only(vpc: &Vpc, c: &mut Checks) -> Result<()> {
    let server = vpc.internet_server6();
    let jumpbox = vpc.end6("jumpbox")?;
    let _http = Server::tcp(server.ns, &server.ip, 80)?;
    // IPv6 is not translated: the server sees the jumpbox's own address.
    c.answered(&jumpbox, &server.ip, 80, &jumpbox.ip)?;
    let _ssh = Server::tcp(jumpbox.ns, &jumpbox.ip, 22)?;
    c.refused(vpc, &server, &jumpbox.ip, 22, DropReason::UplinkUnsolicited)
}

fn web_public(vpc: &Vpc, c: &mut Checks) -> Result<()> {
    let web = vpc.end("web-1")?;
    let _http = Server::tcp(web.ns, &web.ip, 80)?;
    c.answered(
        &vpc.internet_server(),
        &vpc.public_ip("web-1")?,
        80,
        INTERNET_IP,
    )
}

fn ssh_from_home(vpc: &Vpc, c: &mut Checks) -> Result<()> {
    let web = vpc.end("web-1")?;
    let _ssh = Server::tcp(web.ns, &web.ip, 22)?;
    let public = vpc.public_ip("web-1")?;
    c.answered(&vpc.home(), &public, 22, INTERNET_CLIENT_IP)?;
    c.refused(
        vpc,
        &vpc.internet_server(),
        &public,
        22,
        DropReason::SecurityGroupInbound,
    )
}

fn web_to_jumpbox(vpc: &Vpc, c: &mut Checks) -> Result<()> {
    let jumpbox = vpc.end("jumpbox")?;
    let _ssh = Server::tcp(jumpbox.ns, &jumpbox.ip, 22)?;
    let web = vpc.end("web-1")?;
    c.answered(&web, &jumpbox.ip, 22, &web.ip)
}

fn acl_over_sg(vpc: &Vpc, c: &mut Checks) -> Result<()> {
    let db = vpc.end("db-1")?;
    let web = vpc.end("web-1")?;
    let _postgres = Server::tcp(db.ns, &db.ip, 5432)?;
    let received = ping(web.ns, &web.ip, &db.ip, 3)?;
    c.expect(
        received == 3,
        &format!(
            "{} pings {}: {received}/3 answered (the path is open)",
            web.who, db.who
        ),
    );
    if c.show == Show::Story {
        explain(vpc, &web.ip, &db.ip, 5432)?;
    }
    c.refused(vpc, &web, &db.ip, 5432, DropReason::AclInbound)
}

/// `vpc-agent trace` for a TCP packet: the hops (ACL rules, security groups) and the verdict.
fn explain(vpc: &Vpc, from: &str, to: &str, dport: u16) -> Result<()> {
    let out = cli(&[
        "trace",
        "--bpffs",
        vpc.bpffs.arg(),
        "--from",
        from,
        "--to",
        to,
        "--proto",
        "tcp",
        "--dport",
        &dport.to_string(),
    ])?;
    println!("      $ vpc-agent trace --from {from} --to {to} --proto tcp --dport {dport}");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        println!("        {line}");
    }
    Ok(())
}

/// Runs every step; fails naming the steps whose outcome differed.
pub fn tell(vpc: &Vpc, show: Show) -> Result<()> {
    println!("\nthe story (real traffic through the router):");
    let mut failed = Vec::new();
    for (n, (title, step)) in STEPS.iter().enumerate() {
        interrupt::check()?;
        println!("[{}/{}] {title}", n + 1, STEPS.len());
        let mut checks = Checks { show, failed: 0 };
        if let Err(e) = step(vpc, &mut checks) {
            checks.expect(false, &format!("the step could not run: {e:#}"));
        }
        if checks.failed > 0 {
            failed.push(n + 1);
        }
    }
    if !failed.is_empty() {
        bail!("steps {failed:?} did not go as the story says");
    }
    println!("every step went as expected ✓");
    Ok(())
}

/// What the router recorded: drop counters, flow records, and how to see the same.
pub fn conclude(vpc: &Vpc, show: Show, elapsed: Duration) {
    if show == Show::Story {
        let dir = vpc.bpffs.arg();
        println!("\nwhat the router recorded:");
        println!("  $ vpc-agent status --bpffs {dir}   (the drop counters by reason)");
        match cli(&["status", "--bpffs", dir]) {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout);
                let drops = text.find("drops:").map_or(&*text, |i| &text[i..]);
                for line in drops.lines() {
                    println!("    {line}");
                }
            }
            Err(e) => println!("    cannot run vpc-agent status: {e:#}"),
        }
        println!(
            "  $ vpc-agent flows --bpffs {dir}   (this interval's flows: what the flow log will write)"
        );
        match cli(&["flows", "--bpffs", dir]) {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout);
                let lines: Vec<&str> = text.lines().collect();
                for line in lines.iter().take(30) {
                    println!("    {line}");
                }
                if lines.len() > 30 {
                    println!("    ... ({} more)", lines.len() - 30);
                }
            }
            Err(e) => println!("    cannot run vpc-agent flows: {e:#}"),
        }
        println!("  the same with bpftool:");
        println!("    bpftool map dump pinned {dir}/DROP_COUNTERS");
        println!("    bpftool map dump pinned {dir}/FLOWS");
        println!("    ip netns exec {} bpftool net", vpc.router.name());
    }
    println!("demo ran in {:.1} s", elapsed.as_secs_f64());
}
