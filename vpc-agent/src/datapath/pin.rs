//! The agent's bpffs directory (default `/sys/fs/bpf/vpc`): everything the agent leaves in the
//! kernel lives there, so that the datapath outlives the agent and a new agent can adopt it.
//!
//! ```text
//! DIR/<MAP>                 every map of the object (object::maps::ALL), pinned by name,
//!                           AGENT_STATE among them: the agent's record (config path, ...)
//! DIR/links/<if>@<program>  the XDP / tcx links, pinned (FdLink::pin)
//! ```
//!
//! One agent per directory: the agent holds an exclusive `flock` on the directory itself
//! (bpffs holds no regular files, but directories can be locked).

use std::{
    ffi::CString,
    fs::{self, File},
    io, mem,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::{Path, PathBuf},
};

use aya::{
    maps::{Array, Map, MapData, MapError, MapInfo},
    programs::links::{FdLink, PinnedLink},
};
use nix::{
    fcntl::{Flock, FlockArg},
    mount::{MsFlags, mount},
    sys::statfs::{BPF_FS_MAGIC, statfs},
};
use serde::{Deserialize, Serialize};

use vpc_common::agent_state::{AGENT_STATE_CHUNK_BYTES, AGENT_STATE_CHUNKS, AgentStateChunk};

use crate::datapath::object::{OBJECT, maps as names};

/// Default bpffs directory.
pub const DEFAULT_DIR: &str = "/sys/fs/bpf/vpc";
/// Where bpffs is normally mounted.
const BPFFS_ROOT: &str = "/sys/fs/bpf";
/// How often [`read_record`] reads again when it met entries of two writes (it read while the
/// agent wrote) or a record that does not parse.
const RECORD_READS: usize = 5;
/// Sub-directory of the pinned links.
const LINKS: &str = "links";

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("cannot mount bpffs on {}", path.display())]
    Mount {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("cannot unmount bpffs from {}", path.display())]
    Unmount {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} cannot be passed to the kernel (it contains a NUL byte)", path.display())]
    PathNul {
        path: PathBuf,
        #[source]
        source: std::ffi::NulError,
    },
    #[error("{} is not on a bpffs", path.display())]
    NotBpffs { path: PathBuf },
    #[error(
        "another agent is running on {} (it holds the directory lock)",
        path.display()
    )]
    Locked { path: PathBuf },
    #[error("cannot lock {}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("map {name} of the agent's map table is missing from the embedded eBPF object")]
    NotInObject { name: &'static str },
    #[error("cannot parse the embedded eBPF object")]
    Object(#[source] aya_obj::ParseError),
    #[error(
        "pinned map {} is incompatible with this agent ({what}); it was created by another \
         version: run `vpc-agent detach --bpffs {}` first (this removes the datapath)",
        path.display(),
        dir.display()
    )]
    Incompatible {
        path: PathBuf,
        dir: PathBuf,
        what: String,
    },
    #[error("pinned map {}", path.display())]
    Map {
        path: PathBuf,
        #[source]
        source: MapError,
    },
    #[error(
        "the agent record ({bytes} bytes) does not fit {} ({capacity} bytes)",
        path.display()
    )]
    StateTooLarge {
        path: PathBuf,
        bytes: usize,
        capacity: usize,
    },
    #[error("agent record in {} is unreadable", path.display())]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> PinError + '_ {
    move |source| PinError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Whether `path` is on a bpffs.
fn is_bpffs(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == BPF_FS_MAGIC)
}

fn mount_bpffs(path: &Path) -> Result<(), PinError> {
    mount(
        Some("bpffs"),
        path,
        Some("bpf"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|source| PinError::Mount {
        path: path.to_owned(),
        source,
    })?;
    log::info!("mounted bpffs path={}", path.display());
    Ok(())
}

/// Makes sure `dir` exists on a bpffs, mounting bpffs on `/sys/fs/bpf` (or, for a directory
/// elsewhere, on `dir` itself) when it is not mounted.
pub fn ensure_bpffs(dir: &Path) -> Result<(), PinError> {
    let root = Path::new(BPFFS_ROOT);
    if dir.starts_with(root) && !is_bpffs(root) {
        mount_bpffs(root)?;
    }
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    if !is_bpffs(dir) {
        mount_bpffs(dir)?;
    }
    Ok(())
}

/// The exclusive lock on a bpffs directory, held as long as this lives.
pub struct DirLock {
    _lock: Flock<File>,
}

/// Takes the directory lock without waiting; fails with [`PinError::Locked`] if another
/// process holds it.
pub fn lock(dir: &Path) -> Result<DirLock, PinError> {
    let file = File::open(dir).map_err(io_err(dir))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(DirLock { _lock: lock }),
        Err((_, nix::Error::EWOULDBLOCK)) => Err(PinError::Locked {
            path: dir.to_owned(),
        }),
        Err((_, source)) => Err(PinError::Lock {
            path: dir.to_owned(),
            source,
        }),
    }
}

/// Whether an agent holds the lock of `dir` (false when the directory does not exist).
pub fn agent_running(dir: &Path) -> bool {
    dir.exists() && matches!(lock(dir), Err(PinError::Locked { .. }))
}

/// Path of a pinned map.
pub fn map_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Directory of the pinned links.
pub fn links_dir(dir: &Path) -> PathBuf {
    dir.join(LINKS)
}

/// Path of the pinned link of `program` on `interface`.
pub fn link_path(dir: &Path, interface: &str, program: &str) -> PathBuf {
    links_dir(dir).join(format!("{interface}@{program}"))
}

/// The pinned links: (interface, program, path).
pub fn pinned_links(dir: &Path) -> Vec<(String, String, PathBuf)> {
    let Ok(entries) = fs::read_dir(links_dir(dir)) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (interface, program) = name.split_once('@')?;
            Some((interface.to_owned(), program.to_owned(), e.path()))
        })
        .collect();
    out.sort();
    out
}

/// `bpf(cmd, attr)`: the raw syscall's result (-1 with errno on failure).
fn sys_bpf(cmd: aya_obj::generated::bpf_cmd, attr: &mut aya_obj::generated::bpf_attr) -> i64 {
    // SAFETY: `attr` is a valid, writable bpf_attr of the size passed; the commands used here
    // read only the pointers the caller stored in it, which outlive the call.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            std::ptr::from_mut(attr),
            mem::size_of::<aya_obj::generated::bpf_attr>(),
        )
    }
}

/// The ifindex of the device a pinned XDP or tcx link is attached to (0 once that device is
/// gone), `None` for other kinds of link. A link follows its device, not its name: after a
/// rename the pin `links/priv0@...` may point at the device now called something else.
pub fn pinned_link_ifindex(path: &Path) -> Result<Option<u32>, PinError> {
    use aya_obj::generated::{bpf_attr, bpf_cmd, bpf_link_info, bpf_link_type};
    let name = CString::new(path.as_os_str().as_bytes()).map_err(|source| PinError::PathNul {
        path: path.to_owned(),
        source,
    })?;
    let os_err = || PinError::Io {
        path: path.to_owned(),
        source: io::Error::last_os_error(),
    };
    // SAFETY: all-zero is a valid bpf_attr (integers and unions of them).
    let mut attr: bpf_attr = unsafe { mem::zeroed() };
    attr.__bindgen_anon_4.pathname = name.as_ptr() as u64;
    let fd = sys_bpf(bpf_cmd::BPF_OBJ_GET, &mut attr);
    // The syscall returns an int: a descriptor, or -1.
    let Ok(fd @ 0..) = i32::try_from(fd) else {
        return Err(os_err());
    };
    // SAFETY: BPF_OBJ_GET returned a new descriptor, owned from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero is a valid bpf_link_info and bpf_attr.
    let (mut info, mut attr): (bpf_link_info, bpf_attr) = unsafe { mem::zeroed() };
    attr.info.bpf_fd = fd.as_raw_fd() as u32;
    attr.info.info = std::ptr::from_mut(&mut info) as u64;
    attr.info.info_len = mem::size_of::<bpf_link_info>() as u32;
    if sys_bpf(bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut attr) < 0 {
        return Err(os_err());
    }
    // SAFETY: the union member read is the one of the link type the kernel reported.
    let ifindex = unsafe {
        match info.type_ {
            t if t == bpf_link_type::BPF_LINK_TYPE_XDP as u32 => info.__bindgen_anon_1.xdp.ifindex,
            t if t == bpf_link_type::BPF_LINK_TYPE_TCX as u32 => info.__bindgen_anon_1.tcx.ifindex,
            _ => return Ok(None),
        }
    };
    Ok(Some(ifindex))
}

/// Refuses pinned maps whose type, key size, value size or capacity differ from the maps of the
/// embedded object (they were created by an incompatible version). Missing pins are fine.
pub fn check_compatible(dir: &Path) -> Result<(), PinError> {
    let object = aya_obj::Object::parse(OBJECT).map_err(PinError::Object)?;
    for name in names::names() {
        let path = map_path(dir, name);
        if !path.exists() {
            continue;
        }
        let want = object
            .maps
            .get(name)
            .ok_or(PinError::NotInObject { name })?;
        let info = MapInfo::from_pin(&path).map_err(|source| PinError::Map {
            path: path.clone(),
            source,
        })?;
        let have_type = info.map_type().map(|t| t as u32).unwrap_or(u32::MAX);
        // Device maps: aya sizes the value for the kernel (4 or 8 bytes, with a program id).
        let devmap = [
            aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_DEVMAP as u32,
            aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_DEVMAP_HASH as u32,
        ]
        .contains(&want.map_type());
        let value_ok = if devmap {
            matches!(info.value_size(), 4 | 8)
        } else {
            info.value_size() == want.value_size()
        };
        let mismatch = if have_type != want.map_type() {
            Some(format!(
                "map type {have_type}, expected {}",
                want.map_type()
            ))
        } else if info.key_size() != want.key_size() {
            Some(format!(
                "key size {}, expected {}",
                info.key_size(),
                want.key_size()
            ))
        } else if !value_ok {
            Some(format!(
                "value size {}, expected {}",
                info.value_size(),
                want.value_size()
            ))
        } else if info.max_entries() != want.max_entries() {
            Some(format!(
                "max entries {}, expected {}",
                info.max_entries(),
                want.max_entries()
            ))
        } else {
            None
        };
        if let Some(what) = mismatch {
            return Err(PinError::Incompatible {
                path,
                dir: dir.to_owned(),
                what,
            });
        }
    }
    Ok(())
}

/// Refuses `CONFIG` contents written by an agent with another map layout version.
pub fn check_layout(dir: &Path, config: &vpc_common::iface::GlobalConfig) -> Result<(), PinError> {
    let fresh = config.layout_version == 0 && config.generation == 0;
    if fresh || config.layout_version == vpc_common::LAYOUT_VERSION {
        return Ok(());
    }
    Err(PinError::Incompatible {
        path: map_path(dir, names::CONFIG),
        dir: dir.to_owned(),
        what: format!(
            "layout version {}, this agent writes {}",
            config.layout_version,
            vpc_common::LAYOUT_VERSION
        ),
    })
}

/// What the running agent records about itself (for `status` and `trace`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// The definition file, absolute.
    pub config: PathBuf,
    pub pid: u32,
    /// `native` or `skb`.
    pub xdp_mode: String,
    pub version: String,
    /// ifindex -> name of the managed interfaces (in the agent's network namespace), so that
    /// `flows` can name them from anywhere.
    #[serde(default)]
    pub interfaces: std::collections::BTreeMap<u32, String>,
    /// What the flow log wrote and skipped (updated every interval).
    #[serde(default)]
    pub flow_log: crate::flowlog::FlowLogCounters,
    /// Connection-tracking entries removed by the agent's sweep (updated every sweep).
    #[serde(default)]
    pub conntrack_swept: u64,
}

fn open_pinned(path: &Path) -> Result<Map, PinError> {
    let map_err = |source| PinError::Map {
        path: path.to_owned(),
        source,
    };
    let data = MapData::from_pin(path).map_err(map_err)?;
    Map::from_map_data(data).map_err(map_err)
}

/// A pinned map of `dir` by name.
pub fn open_map(dir: &Path, name: &str) -> Result<Map, PinError> {
    open_pinned(&map_path(dir, name))
}

/// Writes the agent record into the pinned `AGENT_STATE` (pinned with the datapath's maps):
/// JSON over consecutive entries, each with the record's length and this write's sequence
/// number (see `vpc_common::agent_state`). A record too large for the map is an error, never
/// cut short.
pub fn write_record(dir: &Path, record: &AgentRecord) -> Result<(), PinError> {
    let path = map_path(dir, names::AGENT_STATE);
    let map_err = |source| PinError::Map {
        path: path.clone(),
        source,
    };
    let json = serde_json::to_vec(record).map_err(|source| PinError::State {
        path: path.clone(),
        source,
    })?;
    let capacity = AGENT_STATE_CHUNKS as usize * AGENT_STATE_CHUNK_BYTES;
    let len = u32::try_from(json.len())
        .ok()
        .filter(|_| json.len() <= capacity)
        .ok_or_else(|| PinError::StateTooLarge {
            path: path.clone(),
            bytes: json.len(),
            capacity,
        })?;
    let mut map = open_pinned(&path)?;
    let mut array: Array<&mut MapData, AgentStateChunk> =
        Array::try_from(&mut map).map_err(map_err)?;
    let seq = array.get(&0, 0).map_err(map_err)?.seq.wrapping_add(1);
    for (index, part) in (0..).zip(json.chunks(AGENT_STATE_CHUNK_BYTES)) {
        let mut chunk = AgentStateChunk {
            len,
            seq,
            ..AgentStateChunk::default()
        };
        chunk.bytes[..part.len()].copy_from_slice(part);
        array.set(index, chunk, 0).map_err(map_err)?;
    }
    Ok(())
}

/// The record's bytes as `array` holds them, `None` when its entries belong to different
/// writes (read while the agent wrote).
fn record_bytes(array: &Array<&MapData, AgentStateChunk>) -> Result<Option<Vec<u8>>, MapError> {
    let first = array.get(&0, 0)?;
    let len = first.len as usize;
    let mut bytes = Vec::with_capacity(len);
    let mut index = 0;
    while bytes.len() < len {
        let chunk = if index == 0 {
            first
        } else {
            array.get(&index, 0)?
        };
        if (chunk.len, chunk.seq) != (first.len, first.seq) {
            return Ok(None);
        }
        let take = (len - bytes.len()).min(AGENT_STATE_CHUNK_BYTES);
        bytes.extend_from_slice(&chunk.bytes[..take]);
        index += 1;
    }
    Ok(Some(bytes))
}

/// Reads the agent record, `None` when there is none (no agent has written one).
pub fn read_record(dir: &Path) -> Result<Option<AgentRecord>, PinError> {
    let path = map_path(dir, names::AGENT_STATE);
    if !path.exists() {
        return Ok(None);
    }
    let map = open_pinned(&path)?;
    let map_err = |source| PinError::Map {
        path: path.clone(),
        source,
    };
    let array: Array<&MapData, AgentStateChunk> = Array::try_from(&map).map_err(map_err)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let retry = attempt < RECORD_READS;
        match record_bytes(&array).map_err(map_err)? {
            Some(bytes) if bytes.is_empty() => return Ok(None),
            Some(bytes) => match serde_json::from_slice(&bytes) {
                Ok(record) => return Ok(Some(record)),
                Err(_) if retry => {}
                Err(source) => return Err(PinError::State { path, source }),
            },
            None if retry => {}
            None => {
                let source = serde::de::Error::custom("the agent kept rewriting it");
                return Err(PinError::State { path, source });
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// What [`remove_all`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub links: usize,
    pub maps: usize,
}

/// How long [`remove_all`] waits for the kernel to release unpinned links (it frees them from
/// a work queue).
const LINK_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Removes every pinned link (which detaches its program), every pinned map and the directory.
/// Returns once the kernel has released the links (the programs are off the interfaces).
pub fn remove_all(dir: &Path) -> Result<Removed, PinError> {
    let mut removed = Removed::default();
    let mut ids = Vec::new();
    for (interface, program, path) in pinned_links(dir) {
        let id = PinnedLink::from_pin(&path)
            .ok()
            .and_then(|pinned| FdLink::from(pinned).info().ok())
            .map(|info| info.id());
        ids.extend(id);
        fs::remove_file(&path).map_err(io_err(&path))?;
        log::info!("detached program={program} interface={interface}");
        removed.links += 1;
    }
    let deadline = std::time::Instant::now() + LINK_RELEASE_WAIT;
    while std::time::Instant::now() < deadline
        && aya::programs::loaded_links()
            .filter_map(Result::ok)
            .any(|link| ids.contains(&link.id()))
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let links = links_dir(dir);
    if links.exists() {
        fs::remove_dir(&links).map_err(io_err(&links))?;
    }
    for name in names::names() {
        let path = map_path(dir, name);
        if path.exists() {
            fs::remove_file(&path).map_err(io_err(&path))?;
            removed.maps += 1;
        }
    }
    if dir.exists() {
        // A directory that is its own bpffs mount (ensure_bpffs mounted it) is unmounted first:
        // removing a mount point fails with EBUSY.
        if is_mount_point(dir) {
            nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH).map_err(|source| {
                PinError::Unmount {
                    path: dir.to_owned(),
                    source,
                }
            })?;
            log::info!("unmounted bpffs path={}", dir.display());
        }
        fs::remove_dir(dir).map_err(io_err(dir))?;
    }
    Ok(removed)
}

/// Whether `dir` is a mount point (another device than its parent).
fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let parent = dir.parent().unwrap_or(Path::new("/"));
    match (fs::metadata(dir), fs::metadata(parent)) {
        (Ok(d), Ok(p)) => d.dev() != p.dev(),
        _ => false,
    }
}
