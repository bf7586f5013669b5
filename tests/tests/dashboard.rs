//! The shipped Grafana dashboard (`deploy/grafana/ioc-edge.json`) asks only for metrics the
//! agent and the collector export: a renamed metric fails here, not on a site's wall.

use ioc_testkit::workspace_root;

#[test]
fn every_metric_the_dashboard_queries_is_exported() {
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join("deploy/grafana/ioc-edge.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let exported = [
        std::fs::read_to_string(root.join("agent/src/metrics.rs")).unwrap(),
        std::fs::read_to_string(root.join("collector/src/metrics.rs")).unwrap(),
    ]
    .concat();
    let mut queried = 0;
    for panel in dash["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(i) = rest.find("ioc_") {
                let name: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[i + name.len()..];
                queried += 1;
                // The agent writes its per-camera counters as `ioc_agent_{name}`.
                let short = name.trim_start_matches("ioc_agent_");
                assert!(
                    exported.contains(&format!("\"{name}"))
                        || exported.contains(&format!("\"{short}\""))
                        || exported.contains(&format!("ioc_agent_{short}")),
                    "{}: {name} is not exported by the agent or the collector",
                    panel["title"]
                );
            }
        }
    }
    assert!(queried >= 20, "{queried}");
}
