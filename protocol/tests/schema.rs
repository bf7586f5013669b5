//! The committed JSON Schemas under `protocol/schema/` must match the types.
//!
//! `UPDATE_SCHEMA=1 cargo test -p ioc-protocol --test schema` rewrites them.

use std::path::Path;

#[test]
fn committed_schemas_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
    let update = std::env::var_os("UPDATE_SCHEMA").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, text) in ioc_protocol::schema::schema_files() {
        let path = dir.join(name);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == text => {}
            Ok(_) => stale.push(format!("{} differs from the types", path.display())),
            Err(e) => stale.push(format!("{}: {e}", path.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "JSON Schema out of date:\n  {}\nregenerate with: UPDATE_SCHEMA=1 cargo test -p ioc-protocol --test schema \
         (and review the diff: a breaking change needs a new schema version)",
        stale.join("\n  ")
    );
}

#[test]
fn schema_pins_the_version() {
    let files = ioc_protocol::schema::schema_files();
    let (_, event) = files
        .iter()
        .find(|(n, _)| *n == "event-v1.schema.json")
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(event).unwrap();
    assert_eq!(v["properties"]["schema"]["const"], "ioc.event/1");
    assert_eq!(v["title"], "ioc.event/1");
    // Forward compatibility: the schema must not forbid unknown fields.
    assert!(v.get("additionalProperties").is_none_or(|a| a != false));
}
