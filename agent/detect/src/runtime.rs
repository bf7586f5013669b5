//! Finding and loading the ONNX Runtime shared library.
//!
//! `ort` is built with `load-dynamic`: nothing is downloaded at build or run
//! time. The library is looked for, in order, at the path in config
//! (`detect.ort_library`), at `$ORT_DYLIB_PATH`, next to the executable, then
//! at the system paths `deploy/setup.sh` and packages install to.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::{Error, Result};

/// The library file this build was made and tested against (ort `api-31`).
pub const ORT_LIBRARY_FILE: &str = "libonnxruntime.so.1.31.1";

/// System locations searched after config, `$ORT_DYLIB_PATH` and the executable's directory.
pub const SYSTEM_PATHS: &[&str] = &[
    "/usr/local/lib/ioc-edge/libonnxruntime.so.1.31.1",
    "/usr/lib/ioc-edge/libonnxruntime.so.1.31.1",
];

const FIX: &str = "run `make setup` (deploy/setup.sh fetches onnxruntime 1.31.1 from PyPI) \
                   or point detect.ort_library / ORT_DYLIB_PATH at libonnxruntime.so.1.31.1";

/// Where the library is, and which rule found it (for logs and errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The library file.
    pub path: PathBuf,
    /// `"config"`, `"ORT_DYLIB_PATH"`, `"executable directory"` or `"system path"`.
    pub via: &'static str,
}

/// Finds the library without loading it. An explicit setting that points at
/// nothing is an error rather than a silent fall-through: the user meant it.
pub fn locate(configured: Option<&Path>) -> Result<Located> {
    if let Some(p) = configured {
        return exists(p, "config", "detect.ort_library");
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return exists(Path::new(&p), "ORT_DYLIB_PATH", "ORT_DYLIB_PATH");
    }
    let mut tried = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_owned))
    {
        let p = dir.join(ORT_LIBRARY_FILE);
        if p.is_file() {
            return Ok(Located {
                path: p,
                via: "executable directory",
            });
        }
        tried.push(p.display().to_string());
    }
    for p in SYSTEM_PATHS {
        if Path::new(p).is_file() {
            return Ok(Located {
                path: p.into(),
                via: "system path",
            });
        }
        tried.push((*p).to_owned());
    }
    Err(Error::Runtime(format!(
        "ONNX Runtime library not found: detect.ort_library and ORT_DYLIB_PATH are unset and it is not at {}; {FIX}",
        tried.join(", ")
    )))
}

fn exists(p: &Path, via: &'static str, key: &str) -> Result<Located> {
    if p.is_file() {
        Ok(Located {
            path: p.to_owned(),
            via,
        })
    } else {
        Err(Error::Runtime(format!(
            "ONNX Runtime library not found at {} (from {key}); {FIX}",
            p.display()
        )))
    }
}

static ENV: OnceLock<(ort::environment::Environment, Located)> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// Loads the library once per process and returns the shared environment.
/// Later calls return the first environment whatever path they pass: ONNX
/// Runtime cannot be loaded twice into one process.
pub fn environment(configured: Option<&Path>) -> Result<(ort::environment::Environment, Located)> {
    if let Some(e) = ENV.get() {
        return Ok(e.clone());
    }
    let _guard = INIT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = ENV.get() {
        return Ok(e.clone());
    }
    let located = locate(configured)?;
    let builder = ort::init_from(&located.path).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("expected version") {
            Error::Runtime(format!(
                "ONNX Runtime at {} is too old: {msg}; ioc-agent needs 1.31 or newer; {FIX}",
                located.path.display()
            ))
        } else {
            Error::Runtime(format!(
                "cannot load ONNX Runtime from {} ({}): {msg}; {FIX}",
                located.path.display(),
                located.via
            ))
        }
    })?;
    let env = builder
        .with_name("ioc-agent")
        .build()
        .map_err(|e| Error::Runtime(format!("cannot create the ONNX Runtime environment: {e}")))?;
    tracing::info!(path = %located.path.display(), via = located.via, "loaded ONNX Runtime");
    let _ = ENV.set((env, located));
    Ok(ENV.get().cloned().expect("just set"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_path_that_does_not_exist_is_named_with_the_fix() {
        let e = locate(Some(Path::new("/nonexistent/libonnxruntime.so")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent/libonnxruntime.so") && e.contains("detect.ort_library"),
            "{e}"
        );
        assert!(e.contains("make setup"), "{e}");
    }

    #[test]
    fn a_configured_path_that_exists_wins() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let l = locate(Some(f.path())).unwrap();
        assert_eq!((l.path.as_path(), l.via), (f.path(), "config"));
    }
}
