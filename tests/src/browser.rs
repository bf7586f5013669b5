//! A headless Chromium (Debian's `chromium` and `chromium-driver`, installed by
//! `deploy/setup.sh`) driven over WebDriver, for the console's tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver and one browser session.
pub struct Browser {
    driver: Child,
    screens: std::path::PathBuf,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn find_binary(names: &[&str]) -> String {
    names
        .iter()
        .find(|p| std::path::Path::new(p).is_file())
        .map(|p| p.to_string())
        .unwrap_or_else(|| {
            panic!(
                "none of {names:?} found: run `make setup` (installs chromium and chromium-driver)"
            )
        })
}

impl Browser {
    /// Starts chromedriver and a headless Chromium at 1400×900; screenshots go to `screens`.
    pub async fn start(screens: &std::path::Path) -> Browser {
        let driver_bin = find_binary(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
        let chromium = find_binary(&["/usr/bin/chromium", "/usr/lib/chromium/chromium"]);
        let port = crate::free_port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,900", "--lang=en-US"]
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {r}"))
            .to_owned();
        Browser {
            driver,
            screens: screens.to_owned(),
            base,
            session,
            http,
        }
    }

    pub async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if !body.is_null() {
            req = req.json(&body);
        }
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        if let Some(err) = r["value"].get("error") {
            panic!("webdriver {path}: {err}: {}", r["value"]["message"]);
        }
        r["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    pub async fn js(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Waits until `script` (a JS expression) is truthy.
    pub async fn wait(&self, what: &str, script: &str) {
        self.wait_up_to(what, script, Duration::from_secs(20)).await;
    }

    /// Waits up to `limit` until `script` (a JS expression) is truthy (for what a real agent
    /// must do first, slower on a loaded machine).
    pub async fn wait_up_to(&self, what: &str, script: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.js(&format!("return !!({script});")).await;
            if v == Value::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn element(&self, css: &str) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    pub async fn click(&self, css: &str) {
        let e = self.element(css).await;
        // Into view first: chromedriver does not scroll inside a fixed pane (the detail).
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": "arguments[0].scrollIntoView({block: 'center'}); return 1;",
                    "args": [{ ELEMENT: e }] }),
        )
        .await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            json!({}),
        )
        .await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.cmd(
            reqwest::Method::POST,
            "/window/rect",
            json!({ "width": width, "height": height }),
        )
        .await;
    }

    /// Fails unless the page fits the window's width (no sideways scrolling).
    pub async fn assert_no_horizontal_scroll(&self, what: &str) {
        let v = self
            .js("return [document.documentElement.scrollWidth, window.innerWidth];")
            .await;
        let (page, window) = (v[0].as_f64().unwrap(), v[1].as_f64().unwrap());
        assert!(
            page <= window + 0.5,
            "{what}: page {page} px wide in a {window} px window"
        );
    }

    pub async fn text(&self, css: &str) -> String {
        let v = self
            .js(&format!(
                "const e = document.querySelector({}); return e ? e.textContent : null;",
                serde_json::to_string(css).unwrap()
            ))
            .await;
        v.as_str()
            .unwrap_or_else(|| panic!("no {css} on the page"))
            .to_owned()
    }

    /// Saves a screenshot as `console-{name}.png` in the folder given at start.
    pub async fn screenshot(&self, name: &str) {
        let png = self
            .cmd(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let path = self.screens.join(format!("console-{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
}

impl Browser {
    /// Clicks at `(fx, fy)` (fractions of its width and height from its top left) on the
    /// element `css`, as a mouse would (W3C actions: real pointer events).
    pub async fn click_at(&self, css: &str, fx: f64, fy: f64) {
        let e = self.element(css).await;
        let r = self
            .cmd(
                reqwest::Method::GET,
                &format!("/element/{e}/rect"),
                Value::Null,
            )
            .await;
        let (w, h) = (r["width"].as_f64().unwrap(), r["height"].as_f64().unwrap());
        // Offsets are from the element's centre.
        let (x, y) = ((fx - 0.5) * w, (fy - 0.5) * h);
        self.cmd(
            reqwest::Method::POST,
            "/actions",
            json!({"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
                "actions": [
                    {"type": "pointerMove", "duration": 0, "origin": {ELEMENT: e}, "x": x.round() as i64, "y": y.round() as i64},
                    {"type": "pointerDown", "button": 0},
                    {"type": "pointerUp", "button": 0}
                ]}]}),
        )
        .await;
        self.cmd(reqwest::Method::DELETE, "/actions", Value::Null)
            .await;
    }

    /// Ends the browser session.
    pub async fn quit(&self) {
        self.cmd(reqwest::Method::DELETE, "", Value::Null).await;
    }
}
