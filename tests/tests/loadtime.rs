#[test]
fn load_time() {
    let t = std::time::Instant::now();
    let _dp = vpc_tests::datapath::Datapath::load().unwrap();
    eprintln!("LOAD {:?}", t.elapsed());
    let out = std::process::Command::new("bpftool").args(["prog", "show"]).output().unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
}
