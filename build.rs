//! Build script of tailcast: only one switch. `TAILCAST_SKIP_INTEROP=1`
//! at build time sets `cfg(tailcast_skip_interop)`, which marks the tests
//! that need the third-party tools of `.ci/interop.sh` as ignored (shown as
//! such by `cargo test`, not run and passed). Changing the variable
//! rebuilds.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=TAILCAST_SKIP_INTEROP");
    println!("cargo::rustc-check-cfg=cfg(tailcast_skip_interop)");
    if std::env::var("TAILCAST_SKIP_INTEROP").as_deref() == Ok("1") {
        println!("cargo::rustc-cfg=tailcast_skip_interop");
    }
}
