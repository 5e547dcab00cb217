//! `caje admin …`, the real binary run as a process against a real node
//! in the test process: what each command does (`commands`) and the exit
//! codes scripts rely on (`exit_codes`).

mod commands;
mod exit_codes;

use std::process::Output;

use crate::helpers::{TestApp, HOST, TOKEN};

/// A path the test origin answers with `max-age=60` and the tag `t`.
pub fn cacheable(name: &str, tag: &str) -> String {
    format!("/headers/{name}?cache-control=max-age%3D60&surrogate-key={tag}")
}

/// The absolute URL `caje admin purge` takes for `path`.
pub fn absolute(path: &str) -> String {
    format!("http://{HOST}{path}")
}

/// `caje admin <args>` with `CAJE_ADMIN_TOKEN` set to `token` (unset for
/// `None`), run off the test's thread: the node's actors live on it.
pub async fn caje_admin(args: &[&str], token: Option<&str>) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let token = token.map(str::to_owned);
    actix_web::rt::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_caje"));
        command.arg("admin").args(&args);
        match token {
            Some(token) => command.env("CAJE_ADMIN_TOKEN", token),
            None => command.env_remove("CAJE_ADMIN_TOKEN"),
        };
        command.output().expect("caje runs")
    })
    .await
    .expect("the caje process was waited for")
}

/// `caje admin <command> --node <app> <args>` with the right token.
pub async fn on(app: &TestApp, command: &str, args: &[&str]) -> Output {
    let node = app.url("");
    let mut all = vec![command, "--node", node.as_str()];
    all.extend_from_slice(args);
    caje_admin(&all, Some(TOKEN)).await
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts exit 0 and returns stdout.
pub fn succeeded(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

pub fn json(out: &Output) -> serde_json::Value {
    let text = succeeded(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}
