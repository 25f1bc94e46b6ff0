//! Issue 14, points 2 and 3: interface changes under a running agent with live traffic. A
//! long-lived TCP session through the NAT gateway (a line every 100 ms, each echoed by a server
//! on the internet) and pings from the public subnet into the private one run while a managed
//! interface is renamed away and replaced, or deleted and re-created (a new ifindex). Each case
//! must end, within 2 s, with the interface's programs attached to the device that now has its
//! name, with new connections translated (the internet sees the elastic IP) and with the NAT
//! session carrying on: every line echoed. The figures are printed (`--nocapture`).

use std::time::{Duration, Instant};

use vpc_tests::{
    agent::{Agent, Bpffs, PingStream, Scratch, programs_on},
    ifchange, require_kernel,
    topology::{INTERNET_CLIENT_IP, Topology},
    traffic::{EchoSession, Server, retry, tcp_request},
};

const FIXTURE: &str = include_str!("../fixtures/nat.yaml");
const JUMPBOX: &str = "10.0.1.10";
const ELASTIC_IP: &str = "198.51.100.10";
/// The bound the issue sets for every managed interface to be enforced again.
const ENFORCED_WITHIN: Duration = Duration::from_secs(2);

/// Runs `change` on the router under traffic and checks the recovery of `ifname`; `bare`: a
/// device that must carry no program afterwards (the renamed one, no longer managed).
fn recovers(what: &str, ifname: &str, bare: Option<&str>, change: impl FnOnce(&Topology)) {
    let topo = Topology::build(FIXTURE, None, false).expect("topology");
    let scratch = Scratch::new().expect("scratch");
    let config = scratch.write("vpc.yaml", FIXTURE).expect("config");
    let bpffs = Bpffs::new().expect("bpffs");
    let log = scratch.dir.join("agent.log");
    let mut agent = Agent::spawn(&topo.router, &config, &bpffs, log, &[]).expect("spawn");
    agent.wait_running().expect("agent runs");
    let want = programs_on(&topo.router, ifname);
    assert_ne!(want, (0, 0, 0), "{ifname} enforced before the change");

    let internet = &topo.port_named("up0").ns;
    let _echo = Server::tcp_echo(internet, INTERNET_CLIENT_IP, 7000).expect("echo server");
    let _peer = Server::tcp(internet, INTERNET_CLIENT_IP, 7001).expect("peer server");
    let private = &topo.port_named("priv0").ns;
    let mut session =
        EchoSession::connect(private, JUMPBOX, INTERNET_CLIENT_IP, 7000, 30).expect("client");
    assert_eq!(
        session.echo("hello", Duration::from_secs(5)).as_deref(),
        Some("hello"),
        "NAT session established"
    );
    let period = Duration::from_millis(100);
    let stream = session.stream(period, Duration::from_secs(8), Duration::from_secs(8));
    let pings = PingStream::start(&topo.port_named("pub0").ns, JUMPBOX, 700, "0.01").expect("ping");
    std::thread::sleep(Duration::from_secs(1));

    let changed = Instant::now();
    change(&topo);
    let changed_in = changed.elapsed();
    let enforced = loop {
        if programs_on(&topo.router, ifname) == want {
            break Some(changed.elapsed());
        }
        if changed.elapsed() > Duration::from_secs(6) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let report = stream.join().expect("stream");
    let (ping_sent, ping_received) = pings.finish().expect("ping summary");
    let outage = report.longest_gap(changed);
    let translated = retry(|| tcp_request(private, JUMPBOX, INTERNET_CLIENT_IP, 7001));
    eprintln!(
        "{what}: change took {changed_in:?}; {ifname} enforced again after {enforced:?}; NAT \
         session: {} lines sent, {} echoed, longest gap {outage:?}; pings public -> private: \
         {ping_sent} sent, {ping_received} received ({} lost); a new NAT connection: {translated:?}",
        report.sent,
        report.arrivals.len(),
        ping_sent - ping_received
    );
    let enforced = enforced.unwrap_or_else(|| {
        panic!(
            "{ifname} never enforced again: programs {:?}\n{}",
            programs_on(&topo.router, ifname),
            agent.log()
        )
    });
    assert!(
        enforced <= ENFORCED_WITHIN,
        "{ifname} enforced after {enforced:?}"
    );
    let status = vpc_tests::agent::cli(&["status", "--bpffs", bpffs.arg()]).expect("status");
    let flows = vpc_tests::agent::cli(&["flows", "--bpffs", bpffs.arg()]).expect("flows");
    assert_eq!(
        report.arrivals.len(),
        report.sent as usize,
        "the NAT session carries on: every line echoed\n{}\n{}\n{}",
        agent.log(),
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&flows.stdout)
    );
    assert_eq!(
        translated.as_deref(),
        Some(format!("peer={ELASTIC_IP}").as_str()),
        "new connections from the private subnet are translated"
    );
    if let Some(old) = bare {
        assert_eq!(
            programs_on(&topo.router, old),
            (0, 0, 0),
            "{old} (renamed away) keeps no program"
        );
    }
    agent.signal("TERM").expect("stop");
    agent.wait_exit(Duration::from_secs(10)).expect("exit");
}

#[test]
fn a_renamed_interface_is_replaced_by_its_new_namesake() {
    require_kernel!();
    recovers(
        "rename priv0, new priv0",
        "priv0",
        Some("privold"),
        |topo| ifchange::rename_and_replace(topo, "priv0", "privold", "eth1").expect("rename"),
    );
}

#[test]
fn a_private_subnet_interface_deleted_and_re_added_recovers() {
    require_kernel!();
    recovers("delete and re-add priv0", "priv0", None, |topo| {
        ifchange::recreate(topo, "priv0").expect("re-create")
    });
}

#[test]
fn an_uplink_deleted_and_re_added_recovers() {
    require_kernel!();
    recovers("delete and re-add up0", "up0", None, |topo| {
        ifchange::recreate(topo, "up0").expect("re-create")
    });
}
