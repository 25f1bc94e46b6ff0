use which::which;

/// Rebuild when the bpf-linker binary changes (aya-template's pattern: the linker is an
/// undeclared dependency of this crate).
fn main() {
    if let Ok(bpf_linker) = which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", bpf_linker.display());
    }
}
