//! The end-to-end benchmark's own XDP programs (crate `bench-ebpf`), from userspace: the
//! in-kernel generator (BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: the kernel runs
//! `bench_gen` on frames of its own page pool and transmits what it returns, XDP_TX, out of the
//! sender's interface), the counting sink on the receiver's interface and the pass-through the
//! Linux router's ingress needs (a veth takes frames sent with XDP only when it runs an XDP
//! program, which the datapath's router gives it anyway).
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::{Array, PerCpuArray},
    programs::{TestRun as _, TestRunAttrs, TestRunOptions, Xdp, XdpMode},
};
use bench_ebpf::{CONFIG_FLOWS_MASK, HEADER_LEN, SINK_BYTES, SINK_PACKETS, UDP_SPORT_OFFSET};
use vpc_tests::netns::NetNs;

/// The object built by `xtask/build.rs`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bench-ebpf"));

const GEN: &str = "bench_gen";
const SINK: &str = "bench_sink";
const PASS: &str = "bench_pass";

/// Frames the kernel runs per call (each call sets up and tears down its page pool).
pub const CALL_FRAMES: u32 = 1 << 16;
/// Frames per batch of a call (xdp-trafficgen's default): transmitted together, in one flush.
const BATCH: u32 = 64;

/// One load of the benchmark's programs and maps.
pub struct Programs {
    ebpf: Ebpf,
}

impl Programs {
    pub fn load() -> Result<Self> {
        let mut ebpf = Ebpf::load(OBJECT).context("loading the bench-ebpf object")?;
        for name in [GEN, SINK, PASS] {
            xdp_mut(&mut ebpf, name)?
                .load()
                .with_context(|| format!("loading {name}"))?;
        }
        Ok(Self { ebpf })
    }

    /// Attaches the sink (native XDP) to `ifname` in `ns`.
    pub fn attach_sink(&mut self, ns: &NetNs, ifname: &str) -> Result<()> {
        self.attach(SINK, ns, ifname)
    }

    /// Attaches the pass-through (native XDP) to `ifname` in `ns`.
    pub fn attach_pass(&mut self, ns: &NetNs, ifname: &str) -> Result<()> {
        self.attach(PASS, ns, ifname)
    }

    /// A veth pair `gen0`/`gen1` in `ns`, the generator attached to `gen0` and the sink to
    /// `gen1`: frames generated on `gen0` reach the sink without a router (the generator's own
    /// cost). Attached, the generator also stays in the kernel's XDP dispatcher: the test run of
    /// a program attached nowhere puts it in and takes it out again on every call (an RCU grace
    /// period, milliseconds).
    pub fn loopback_pair(&mut self, ns: &NetNs) -> Result<()> {
        ns.ip(&[
            "link", "add", "gen0", "type", "veth", "peer", "name", "gen1",
        ])?;
        ns.ip(&["link", "set", "gen0", "up"])?;
        ns.ip(&["link", "set", "gen1", "up"])?;
        self.attach(GEN, ns, "gen0")?;
        self.attach(SINK, ns, "gen1")
    }

    fn attach(&mut self, name: &str, ns: &NetNs, ifname: &str) -> Result<()> {
        let _inside = ns.enter()?;
        xdp_mut(&mut self.ebpf, name)?
            .attach(ifname, XdpMode::Driver)
            .with_context(|| format!("attaching {name} to {ifname} in {}", ns.name()))?;
        Ok(())
    }

    /// Sets what the generator writes over every frame: `frame`'s headers, and `flows`
    /// (a power of two) UDP source ports from the frame's.
    pub fn set_template(&mut self, frame: &[u8], flows: u32) -> Result<()> {
        if !flows.is_power_of_two() {
            bail!("flows must be a power of two, not {flows}");
        }
        let header: [u8; HEADER_LEN] = frame
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .context("frame shorter than its headers")?;
        let mut map: Array<_, [u8; HEADER_LEN]> =
            Array::try_from(self.ebpf.map_mut("GEN_HEADER").context("GEN_HEADER")?)?;
        map.set(0, header, 0)?;
        let mut config: Array<_, u32> =
            Array::try_from(self.ebpf.map_mut("GEN_CONFIG").context("GEN_CONFIG")?)?;
        config.set(CONFIG_FLOWS_MASK, flows - 1, 0)?;
        Ok(())
    }

    /// Frames generated so far, per CPU.
    pub fn generated(&self) -> Result<Vec<u64>> {
        let map: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map("GEN_PACKETS").context("GEN_PACKETS")?)?;
        Ok(map.get(&0, 0)?.iter().copied().collect())
    }

    /// Packets and bytes received by the sink so far, per CPU.
    pub fn received(&self) -> Result<Vec<(u64, u64)>> {
        let map: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map("SINK_COUNTERS").context("SINK_COUNTERS")?)?;
        let packets = map.get(&SINK_PACKETS, 0)?;
        let bytes = map.get(&SINK_BYTES, 0)?;
        Ok(packets.iter().copied().zip(bytes.iter().copied()).collect())
    }

    /// The generator and the pass-through (for their run-time statistics).
    pub fn program(&self, which: Which) -> Result<&Xdp> {
        let name = match which {
            Which::Generator => GEN,
            Which::Pass => PASS,
        };
        Ok(self
            .ebpf
            .program(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()?)
    }

    /// Runs the generator from the calling thread (inside the sender's namespace) on `frame`,
    /// as if it arrived on `ifindex`, which it leaves through, until `stop` is set: calls of
    /// [`CALL_FRAMES`] frames. Returns the calls made.
    pub fn generate(&self, frame: &[u8], ifindex: u32, stop: &AtomicBool) -> Result<u64> {
        let prog = self.program(Which::Generator)?;
        let ctx = xdp_md(frame.len(), ifindex);
        let mut calls = 0;
        while !stop.load(Ordering::Relaxed) {
            let opts = TestRunOptions {
                data_in: Some(frame),
                ctx_in: Some(&ctx),
                repeat: CALL_FRAMES,
                attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
                ..TestRunOptions::default()
            };
            prog.test_run(opts)
                .context("BPF_PROG_TEST_RUN (live frames)")?;
            calls += 1;
        }
        Ok(calls)
    }
}

/// One of the benchmark's programs.
#[derive(Clone, Copy, Debug)]
pub enum Which {
    Generator,
    Pass,
}

fn xdp_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    Ok(ebpf
        .program_mut(name)
        .with_context(|| format!("program {name} missing"))?
        .try_into()?)
}

/// `struct xdp_md` as BPF_PROG_TEST_RUN takes it in `ctx_in`, as bytes: `data` 0, `data_end`
/// the frame's length (the kernel insists), `ingress_ifindex` the sender's interface (the
/// frames leave through it); the rest 0.
fn xdp_md(len: usize, ifindex: u32) -> Vec<u8> {
    let fields = [0, len as u32, 0, ifindex, 0, 0];
    fields.iter().flat_map(|f| f.to_ne_bytes()).collect()
}

/// A UDP frame of `size` bytes (Ethernet header to the end of the payload, no FCS) with the
/// UDP checksum 0 (none, valid for IPv4: the generator rewrites the source port).
pub fn udp_frame(mut frame: Vec<u8>, size: usize) -> Result<Vec<u8>> {
    if frame.len() != size {
        bail!("frame is {} bytes, not {size}", frame.len());
    }
    frame
        .get_mut(UDP_SPORT_OFFSET + 6..UDP_SPORT_OFFSET + 8)
        .context("frame shorter than its UDP header")?
        .fill(0);
    Ok(frame)
}

/// The UDP payload that makes a frame of `size` bytes.
pub fn payload_len(size: usize) -> Result<usize> {
    size.checked_sub(HEADER_LEN)
        .with_context(|| format!("a frame of {size} bytes cannot hold the headers"))
}

#[cfg(test)]
mod tests {
    use vpc_tests::packet::{Packet, checksum};

    use super::*;

    #[test]
    fn frames_have_the_size_asked_and_valid_headers() {
        for size in [64, 512, 1500] {
            let payload = vec![0xa5; payload_len(size).unwrap()];
            let built = Packet::udp("10.0.0.10", "10.0.1.10", 4000, 5000)
                .payload(&payload)
                .build();
            let frame = udp_frame(built, size).unwrap();
            assert_eq!(frame.len(), size);
            // IPv4 total length and UDP length cover the frame after the Ethernet header.
            assert_eq!(
                usize::from(u16::from_be_bytes([frame[16], frame[17]])),
                size - 14
            );
            assert_eq!(
                usize::from(u16::from_be_bytes([frame[38], frame[39]])),
                size - 34
            );
            assert_eq!(
                &frame[UDP_SPORT_OFFSET..UDP_SPORT_OFFSET + 2],
                &4000u16.to_be_bytes()
            );
            assert_eq!(&frame[40..42], &[0, 0], "UDP checksum must be none");
            // The IPv4 header checksum is still right (only the UDP checksum was cleared).
            let ip = &frame[14..34];
            assert_eq!(checksum(&[ip]), 0);
        }
    }

    #[test]
    fn a_frame_too_small_for_its_headers_is_refused() {
        assert!(payload_len(41).is_err());
        assert!(udp_frame(vec![0; 30], 30).is_err());
    }

    #[test]
    fn the_test_run_context_names_the_ingress_and_the_length() {
        let md = xdp_md(64, 7);
        assert_eq!(md.len(), 24);
        assert_eq!(u32::from_ne_bytes(md[4..8].try_into().unwrap()), 64);
        assert_eq!(u32::from_ne_bytes(md[12..16].try_into().unwrap()), 7);
    }
}
