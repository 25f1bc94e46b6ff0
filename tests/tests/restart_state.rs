//! Connection and translation state lives in pinned maps: a TCP session through the NAT
//! gateway carries on across kill -9 of the agent and a restart (the new agent re-adopts the
//! maps instead of starting empty).

use std::time::Duration;

use vpc_tests::{
    agent::{Agent, Bpffs, Scratch},
    require_kernel,
    topology::{INTERNET_CLIENT_IP, Topology},
    traffic::{EchoSession, Server},
};

const FIXTURE: &str = include_str!("../fixtures/nat.yaml");

#[test]
fn a_nat_session_survives_an_agent_restart() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, None, false).expect("topology");
    let scratch = Scratch::new().expect("scratch");
    let config = scratch.write("vpc.yaml", FIXTURE).expect("config");
    let bpffs = Bpffs::new().expect("bpffs");
    let spawn = |n: u32| {
        let log = scratch.dir.join(format!("agent{n}.log"));
        let mut agent = Agent::spawn(&topo.router, &config, &bpffs, log, &[]).expect("spawn");
        agent.wait_running().expect("agent runs");
        agent
    };
    let mut agent = spawn(1);

    // An echo server on the internet; the jumpbox holds one TCP session to it.
    let internet = &topo.port_named("up0").ns;
    let _echo = Server::tcp_echo(internet, INTERNET_CLIENT_IP, 7000).expect("echo server");
    let private = &topo.port_named("priv0").ns;
    let mut session =
        EchoSession::connect(private, "10.0.1.10", INTERNET_CLIENT_IP, 7000, 30).expect("client");
    let mut echo = |text: &str| session.echo(text, Duration::from_secs(5));
    assert_eq!(
        echo("before").as_deref(),
        Some("before"),
        "session established"
    );

    agent.kill9().expect("kill -9");
    assert_eq!(
        echo("while down").as_deref(),
        Some("while down"),
        "the datapath keeps going"
    );
    let restarted = spawn(2);
    assert!(
        restarted.log().contains("pinned_maps=reused"),
        "{}",
        restarted.log()
    );
    assert_eq!(
        echo("after").as_deref(),
        Some("after"),
        "same session after the restart"
    );
    restarted.signal("TERM").expect("stop");
}
