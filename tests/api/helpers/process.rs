//! A caje process started from the built binary, and what a test reads of a
//! process from outside: signals, exit status, logs, memory and CPU time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::HOST;

/// A caje process started from the built binary, for what only a real
/// process shows (peak memory, exit codes, nodes sharing a database). Its
/// stderr goes to `<config>.log`, printed if the test fails. Killed when dropped.
pub struct CajeProcess {
    pub name: String,
    pub child: std::process::Child,
    pub port: u16,
    log: PathBuf,
    /// Everything it printed on stdout so far.
    stdout: Arc<Mutex<String>>,
}

impl CajeProcess {
    /// Starts `caje --config <file>` and waits for its "listening" line.
    pub async fn start(config: &Path) -> CajeProcess {
        Self::start_with("caje", config, &[]).await
    }

    /// The same, named `name` in messages, with extra environment variables.
    pub async fn start_with(name: &str, config: &Path, env: &[(&str, &str)]) -> CajeProcess {
        use std::io::BufRead;
        let log = config.with_extension("log");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_caje"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "caje=info")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("caje binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let printed = Arc::new(Mutex::new(String::new()));
        let kept = printed.clone();
        // Reads the announcement, then keeps draining stdout until caje exits.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(mut kept) = kept.lock() {
                    kept.push_str(&line);
                    kept.push('\n');
                }
                if let Some(port) = line.strip_prefix("caje listening on port ") {
                    if let (Some(tx), Ok(port)) = (tx.take(), port.trim().parse::<u16>()) {
                        let _ = tx.send(port);
                    }
                }
            }
        });
        let mut process = CajeProcess {
            name: name.to_owned(),
            child,
            port: 0,
            log,
            stdout: printed,
        };
        process.port = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .unwrap_or_else(|_| panic!("{name} did not announce its port within 30 s"))
            .unwrap_or_else(|_| panic!("{name} exited before listening"));
        process
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Everything the process wrote so far: its stdout, then its stderr log.
    pub fn output(&self) -> String {
        let stdout = self.stdout.lock().expect("stdout lock").clone();
        let stderr = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("{stdout}{stderr}")
    }

    /// Peak resident memory so far, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }
}

impl Drop for CajeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("---- log of {} ----\n{log}", self.name);
        }
    }
}

/// Process control for fault and load tests: signals, exit status, logs,
/// memory and CPU time.
impl CajeProcess {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits in pid_t")
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        let sent = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(
            sent,
            0,
            "kill({}, {signal}): {}",
            self.pid(),
            std::io::Error::last_os_error()
        );
    }

    /// Waits for the process to exit, polling; fails the test after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} still runs {within:?} after being told to stop",
                self.name
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its log once it holds `text`: a running caje writes its lines from a
    /// thread of its own, a moment after they are logged.
    pub async fn logged(&self, text: &str) -> String {
        super::eventually(|| async {
            let log = self.log();
            log.contains(text).then_some(log)
        })
        .await
    }

    /// An unlabelled metric of the node, from `/_caje/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let reply = super::request(
            &super::test_client(),
            &self.url("/_caje/metrics"),
            "GET",
            HOST,
            &[("authorization", &format!("Bearer {}", super::TOKEN))],
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply
            .body
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{}", reply.body))
    }

    /// Resident memory now, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// CPU time (user and system) it has used so far.
    pub fn cpu_time(&self) -> Duration {
        cpu_time_of(&self.child.id().to_string())
    }
}

/// CPU time (user and system) used by process `pid` (`self` for this one).
pub fn cpu_time_of(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th of the whole line.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf takes an integer and touches no memory of ours.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// Writes `<dir>/caje.toml` for a [`CajeProcess`] in front of `upstream`
/// for [`HOST`]: cache and manifest in `dir`, port 0, no LiteFS, the
/// populator only on demand; `extra` adds top-level keys.
pub fn process_config(dir: &Path, upstream: &str, extra: &str) -> PathBuf {
    let config = dir.join("caje.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ncache_dir = \"{0}/cache\"\ndatabase = \"{0}/manifest.db\"\n\
             litefs = \"off\"\npopulate_interval = \"1h\"\n{extra}\n\
             [[origin]]\nhost = \"{HOST}\"\nupstream = \"{upstream}\"\n",
            dir.display()
        ),
    )
    .expect("write config");
    config
}
