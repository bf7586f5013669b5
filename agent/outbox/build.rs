//! Records when the agent was built: a wall clock earlier than that cannot be right (a box
//! without a battery-backed clock boots in 1970 until NTP answers). `SOURCE_DATE_EPOCH`, as
//! reproducible builds set it, wins over the build machine's clock.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    println!("cargo:rustc-env=IOC_BUILD_UNIX_S={secs}");
}
