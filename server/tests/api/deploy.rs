//! What `deploy/` ships is checked against the binary it runs: the systemd unit parses
//! (`systemd-analyze verify`, where systemd's tools are installed) and every flag its
//! `ExecStart` passes is one `serve` accepts. (No systemd runs as PID 1 here, so the unit
//! is not started; `cluster.rs` runs replicas with the same flags.)

use std::path::Path;

fn unit() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::read_to_string(root.join("deploy/portcullis.service")).unwrap()
}

/// The unit's `ExecStart`, continuation lines joined.
fn exec_start(unit: &str) -> Vec<String> {
    let joined = unit.replace("\\\n", " ");
    let line = joined.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("an ExecStart line");
    line.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn the_systemd_unit_passes_flags_serve_accepts() {
    let words = exec_start(&unit());
    assert_eq!(words[..2], ["/usr/local/bin/portcullis", "serve"]);
    let dir = std::env::temp_dir().join(format!("portcullis-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // `%d` is the service's credentials directory: files there hold the secrets.
    let args: Vec<String> = words[2..].iter().map(|w| w.replace("%d", &dir.display().to_string())).collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .args(&args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}: {}", args, String::from_utf8_lossy(&out.stderr));
    // A flag that does not exist is refused the same way, so the check above can fail.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--no-such-flag", "x", "--help"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_systemd_unit_verifies() {
    let Ok(which) = std::process::Command::new("systemd-analyze").arg("--version").output() else {
        println!("skipped: systemd-analyze is not installed");
        return;
    };
    assert!(which.status.success());
    let dir = std::env::temp_dir().join(format!("portcullis-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("portcullis.service");
    std::fs::write(&path, unit().replace("/usr/local/bin/portcullis", env!("CARGO_BIN_EXE_portcullis"))).unwrap();
    let out = std::process::Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // verify exits 0 on directives it ignores: any word from it is a fault.
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
    std::fs::remove_dir_all(&dir).unwrap();
}
