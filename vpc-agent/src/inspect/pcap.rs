//! Reading captures for `trace --pcap`: tcpdump's classic pcap (either byte order, micro- or
//! nanosecond) and pcapng (section, interface description, enhanced and simple packet
//! blocks). Only Ethernet link types are kept; every other packet is reported as skipped.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a pcap or pcapng capture", path.display())]
    Format { path: PathBuf },
    #[error("{}: truncated at byte {at}", path.display())]
    Truncated { path: PathBuf, at: usize },
    #[error("{}: link type {link} is not Ethernet", path.display())]
    LinkType { path: PathBuf, link: u32 },
}

const LINKTYPE_ETHERNET: u32 = 1;

/// The frames of a capture, in order.
pub fn read(path: &Path) -> Result<Vec<Vec<u8>>, PcapError> {
    let data = std::fs::read(path).map_err(|source| PcapError::Read {
        path: path.to_owned(),
        source,
    })?;
    let magic = data.get(0..4).ok_or_else(|| PcapError::Format {
        path: path.to_owned(),
    })?;
    match magic {
        [0x0a, 0x0d, 0x0d, 0x0a] => pcapng(path, &data),
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => classic(path, &data, true),
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => classic(path, &data, false),
        _ => Err(PcapError::Format {
            path: path.to_owned(),
        }),
    }
}

fn u32_at(data: &[u8], at: usize, le: bool) -> Option<u32> {
    let b: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
    Some(if le {
        u32::from_le_bytes(b)
    } else {
        u32::from_be_bytes(b)
    })
}

fn classic(path: &Path, data: &[u8], le: bool) -> Result<Vec<Vec<u8>>, PcapError> {
    let truncated = |at| PcapError::Truncated {
        path: path.to_owned(),
        at,
    };
    let link = u32_at(data, 20, le).ok_or_else(|| truncated(20))? & 0x0fff_ffff;
    if link != LINKTYPE_ETHERNET {
        return Err(PcapError::LinkType {
            path: path.to_owned(),
            link,
        });
    }
    let mut frames = Vec::new();
    let mut at = 24;
    while at < data.len() {
        let caplen = u32_at(data, at + 8, le).ok_or_else(|| truncated(at))? as usize;
        let frame = data
            .get(at + 16..at + 16 + caplen)
            .ok_or_else(|| truncated(at))?;
        frames.push(frame.to_vec());
        at += 16 + caplen;
    }
    Ok(frames)
}

fn pcapng(path: &Path, data: &[u8]) -> Result<Vec<Vec<u8>>, PcapError> {
    let truncated = |at| PcapError::Truncated {
        path: path.to_owned(),
        at,
    };
    let mut frames = Vec::new();
    // Link types of the section's interfaces, by interface id.
    let mut links: Vec<u32> = Vec::new();
    let mut le = true;
    let mut at = 0;
    while at + 12 <= data.len() {
        if data[at..at + 4] == [0x0a, 0x0d, 0x0d, 0x0a] {
            // Section header: its byte-order magic decides the section's order.
            le = data.get(at + 8..at + 12) == Some(&[0x4d, 0x3c, 0x2b, 0x1a]);
            links.clear();
        }
        let kind = u32_at(data, at, le).ok_or_else(|| truncated(at))?;
        let len = u32_at(data, at + 4, le).ok_or_else(|| truncated(at))? as usize;
        if len < 12 || at + len > data.len() {
            return Err(truncated(at));
        }
        let body = &data[at + 8..at + len - 4];
        match kind {
            // Interface description: link type (u16) first.
            1 => {
                let b = body.get(0..2).ok_or_else(|| truncated(at))?;
                let link = if le {
                    u16::from_le_bytes([b[0], b[1]])
                } else {
                    u16::from_be_bytes([b[0], b[1]])
                };
                links.push(u32::from(link));
            }
            // Enhanced packet: interface id, timestamp (2), captured length, original length.
            6 => {
                let iface = u32_at(body, 0, le).ok_or_else(|| truncated(at))? as usize;
                let caplen = u32_at(body, 12, le).ok_or_else(|| truncated(at))? as usize;
                let frame = body.get(20..20 + caplen).ok_or_else(|| truncated(at))?;
                let link = links.get(iface).copied().unwrap_or(0);
                if link != LINKTYPE_ETHERNET {
                    return Err(PcapError::LinkType {
                        path: path.to_owned(),
                        link,
                    });
                }
                frames.push(frame.to_vec());
            }
            // Simple packet (interface 0): original length, then the frame (to the block end).
            3 => {
                let orig = u32_at(body, 0, le).ok_or_else(|| truncated(at))? as usize;
                let frame = &body[4..];
                frames.push(frame[..orig.min(frame.len())].to_vec());
            }
            _ => {}
        }
        at += len;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, bytes: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("vpc-pcap-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn classic_little_endian_frames_come_back_in_order() {
        let mut f = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&65535u32.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes());
        for frame in [&[1u8, 2, 3][..], &[4, 5]] {
            f.extend_from_slice(&[0; 8]);
            f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            f.extend_from_slice(frame);
        }
        let path = write("classic", &f);
        assert_eq!(read(&path).unwrap(), vec![vec![1, 2, 3], vec![4, 5]]);
        f.truncate(f.len() - 1);
        std::fs::write(&path, &f).unwrap();
        assert!(matches!(read(&path), Err(PcapError::Truncated { .. })));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn pcapng_enhanced_packets_are_read() {
        let block = |kind: u32, body: &[u8]| {
            let mut body = body.to_vec();
            while !body.len().is_multiple_of(4) {
                body.push(0);
            }
            let len = (12 + body.len()) as u32;
            let mut b = kind.to_le_bytes().to_vec();
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(&body);
            b.extend_from_slice(&len.to_le_bytes());
            b
        };
        let mut shb = vec![0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0];
        shb.extend_from_slice(&[0xff; 8]);
        let mut f = block(0x0a0d_0d0a, &shb);
        f.extend(block(1, &[1, 0, 0, 0, 0, 0, 0, 0]));
        let mut epb = vec![0u8; 12];
        epb.extend_from_slice(&3u32.to_le_bytes());
        epb.extend_from_slice(&3u32.to_le_bytes());
        epb.extend_from_slice(&[7, 8, 9]);
        f.extend(block(6, &epb));
        let path = write("ng", &f);
        assert_eq!(read(&path).unwrap(), vec![vec![7, 8, 9]]);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn other_files_are_refused() {
        let path = write("text", b"hello world");
        assert!(matches!(read(&path), Err(PcapError::Format { .. })));
        let _ = std::fs::remove_file(path);
    }
}
