//! The custodian ceremony through the CLI against the real server, and a search of the data
//! dir and the log for root key material.

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;

fn coffer(server: &Server, args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffer"));
    cmd.args(args)
        .arg("--data-dir")
        .arg(server.data_dir())
        .env_remove("COFFER_API_KEY");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(server: &Server, args: &[&str], envs: &[(&str, &str)]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, out, err) = coffer(server, &all, envs);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}"))
}

fn part_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn custodians_unseal_after_a_restart_and_wrong_parts_are_caught() {
    let mut server = Server::start();
    let custodians = tempfile::tempdir().unwrap();
    let instance = json(&server, &["kms", "instance", "create", "--name", "prod"], &[]);
    let id = instance["id"].as_str().unwrap().to_owned();
    assert_eq!(instance["initialized"], false);

    let out = custodians.path().join("init");
    let init = json(
        &server,
        &[
            "kms",
            "init",
            "--instance",
            &id,
            "--parts",
            "3",
            "--out-dir",
            out.to_str().unwrap(),
        ],
        &[("COFFER_PART_PASSPHRASE_2", "custodian two's passphrase")],
    );
    assert_eq!(
        (init["initialized"].as_bool(), init["sealed"].as_bool()),
        (Some(true), Some(false))
    );
    let parts = part_files(&out);
    assert_eq!(parts.len(), 3);
    let sealed_part = std::fs::read_to_string(&parts[1]).unwrap();
    assert!(sealed_part.contains("\"passphrase\"") && !sealed_part.contains("\"plain\""));

    // Another instance's parts, to play the wrong custodian.
    let other = json(&server, &["kms", "instance", "create", "--name", "other"], &[]);
    let other_dir = custodians.path().join("other");
    json(
        &server,
        &[
            "kms",
            "init",
            "--instance",
            other["id"].as_str().unwrap(),
            "--out-dir",
            other_dir.to_str().unwrap(),
        ],
        &[],
    );
    let wrong_part = part_files(&other_dir)[0].clone();

    server.restart();
    assert_eq!(
        json(&server, &["kms", "instance", "show", &id], &[])["sealed"],
        true
    );

    let load = |part: &str, pass: Option<&str>| {
        let envs: Vec<(&str, &str)> = pass
            .map(|p| vec![("COFFER_PART_PASSPHRASE", p)])
            .unwrap_or_default();
        coffer(
            &server,
            &["kms", "load-part", "--instance", &id, "--part", part],
            &envs,
        )
    };
    // A wrong passphrase is refused before anything reaches the server.
    let (ok, _, err) = load(&parts[1], Some("not it"));
    assert!(!ok && err.contains("wrong passphrase"), "{err}");
    let (ok, out, _) = load(&parts[0], None);
    assert!(ok && out.contains("1 of 3"), "{out}");
    let (ok, _, _) = load(&parts[1], Some("custodian two's passphrase"));
    assert!(ok);
    // The third part is someone else's: the verification pattern catches it.
    let (ok, _, err) = load(&wrong_part, None);
    assert!(!ok && err.contains("verification pattern"), "{err}");
    assert_eq!(
        json(&server, &["kms", "instance", "show", &id], &[])["sealed"],
        true,
        "a missing or wrong part leaves it sealed"
    );
    for (p, pass) in [
        (&parts[0], None),
        (&parts[1], Some("custodian two's passphrase")),
        (&parts[2], None),
    ] {
        let (ok, _, err) = load(p, pass);
        assert!(ok, "{err}");
    }
    let shown = json(&server, &["kms", "instance", "show", &id], &[]);
    assert_eq!(shown["sealed"], false);
    assert_eq!(shown["verification_pattern"], init["verification_pattern"]);

    // Master key rotation, online.
    let rotated = json(
        &server,
        &[
            "kms",
            "rotate-master",
            "--instance",
            &id,
            "--out-dir",
            custodians.path().join("new").to_str().unwrap(),
        ],
        &[],
    );
    assert_ne!(rotated["verification_pattern"], init["verification_pattern"]);
    assert_eq!(rotated["sealed"], false);
}
