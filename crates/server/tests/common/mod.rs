//! Starts the real `coffer` binary on free loopback ports in a fresh data dir, and builds
//! `aws-sdk-s3` clients for it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

pub struct Server {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub bootstrap: serde_json::Value,
}

impl Server {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Self {
            dir,
            child: None,
            bootstrap: serde_json::Value::Null,
        };
        s.spawn();
        s
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&mut self) {
        let boot = self.dir.path().join("bootstrap.json");
        let _ = std::fs::remove_file(&boot);
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_coffer"))
            .args(["serve", "--data-dir"])
            .arg(self.dir.path())
            .args(["--s3-listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !boot.exists() {
            assert!(Instant::now() < deadline, "coffer did not start: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        self.bootstrap = serde_json::from_slice(&std::fs::read(&boot).unwrap()).unwrap();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn endpoint(&self) -> String {
        self.bootstrap["s3_endpoint"].as_str().unwrap().to_owned()
    }

    pub fn control(&self) -> String {
        self.bootstrap["control_endpoint"].as_str().unwrap().to_owned()
    }

    pub fn key(&self, name: &str) -> String {
        self.bootstrap[name].as_str().unwrap().to_owned()
    }

    pub fn client(&self) -> aws_sdk_s3::Client {
        self.client_with(
            &self.key("admin_access_key_id"),
            &self.key("admin_secret_access_key"),
        )
    }

    pub fn client_with(&self, ak: &str, sk: &str) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-south"))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new(ak, sk, None, None, "test"))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Stops with SIGKILL (no chance to clean up).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops with SIGTERM and waits for the graceful shutdown.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.terminate();
        self.spawn();
    }

    pub fn files_under(&self, sub: &str) -> Vec<PathBuf> {
        fn walk(p: &Path, out: &mut Vec<PathBuf>) {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        walk(&path, out)
                    } else {
                        out.push(path)
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir.path().join(sub), &mut out);
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn md5_hex(data: &[u8]) -> String {
    format!("{:x}", md5::compute(data))
}
