//! The `caje` command as a user runs it.

use std::process::Command;

fn caje(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_caje"))
        .args(args)
        .output()
        .expect("caje runs")
}

fn write_config(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("caje.toml");
    std::fs::write(&path, text).expect("write config");
    let path = path.display().to_string();
    (dir, path)
}

#[test]
fn check_config_accepts_a_valid_file() {
    let (_dir, path) = write_config(
        "listen = \"127.0.0.1:0\"\n[[origin]]\nhost = \"a.test\"\nupstream = \"http://127.0.0.1:9\"\ntimeout = \"2s\"\n",
    );
    let out = caje(&["check-config", &path]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok, 1 origin(s)"), "{stdout}");
}

#[test]
fn check_config_names_file_line_and_key() {
    let cases = [
        (
            "[[origin]]\nhost = \"a\"\nupstream = \"http://b\"\ntimeout = \"soon\"\n",
            "line 4: key `origin[0].timeout`",
        ),
        (
            "listen = \"x\"\n[[origin]]\nhost = \"a\"\nupstream = \"http://b\"\n",
            "line 1: key `listen`",
        ),
        (
            "[[origin]]\nhost = \"a\"\nupstream = \"http://b\"\ncolour = \"red\"\n",
            "line 4",
        ),
        (
            "[[origin]]\nhost = \"a\"\nupstream = \"ftp://b\"\n",
            "line 3: key `origin[0].upstream`",
        ),
        (
            "[[origin]]\nhost = \"a\"\nupstream = \"https://b\"\nca_file = \"/nonexistent/ca.pem\"\n",
            "line 4: key `origin[0].ca_file`",
        ),
        ("listen = \n", "line 1"),
    ];
    for (text, expected) in cases {
        let (_dir, path) = write_config(text);
        let out = caje(&["check-config", &path]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with(&format!("{path}: ")), "{stderr}");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr}"
        );
    }
}

#[test]
fn a_missing_file_and_a_bad_run_config_fail_clearly() {
    let out = caje(&["check-config", "/nonexistent/caje.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/caje.toml: cannot read"));

    let (_dir, path) = write_config("[[origin]]\nhost = \"a\"\n");
    let out = caje(&["--config", &path]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&path) && stderr.contains("upstream"),
        "{stderr}"
    );
}

#[test]
fn the_shipped_example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/caje.example.toml");
    let out = caje(&["check-config", example]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
