//! The operator CLI against a running server, through the control plane.

mod common;

use std::process::Command;

use common::Server;

fn coffer(server: &Server, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(args)
        .arg("--data-dir")
        .arg(server.data_dir())
        .env_remove("COFFER_API_KEY")
        .env_remove("COFFER_CONTROL_ENDPOINT")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(server: &Server, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, out, err) = coffer(server, &all);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn iam_commands_manage_identities_and_policies() {
    let server = Server::start();
    let user = json(&server, &["iam", "user", "create", "--name", "carol"]);
    let iam_id = user["iam_id"].as_str().unwrap().to_owned();
    assert!(iam_id.starts_with("IBMid-"));

    let (ok, table, _) = coffer(&server, &["iam", "user", "list"]);
    assert!(
        ok && table.contains("carol") && table.contains("IAM ID"),
        "{table}"
    );

    let sid = json(&server, &["iam", "serviceid", "create", "--name", "backup-job"]);
    let sid_iam = sid["iam_id"].as_str().unwrap().to_owned();
    let key = json(
        &server,
        &[
            "iam", "apikey", "create", "--name", "job-key", "--iam-id", &sid_iam,
        ],
    );
    assert_eq!(key["apikey"].as_str().unwrap().len(), 44);
    let keys = json(&server, &["iam", "apikey", "list", "--iam-id", &sid_iam]);
    assert_eq!(keys["apikeys"].as_array().unwrap().len(), 1);
    assert!(
        keys["apikeys"][0].get("apikey").is_none(),
        "the secret is never listed"
    );

    let instance = server.key("cos_instance_id");
    let hmac = json(
        &server,
        &[
            "iam",
            "hmac",
            "create",
            "--iam-id",
            &sid_iam,
            "--instance",
            &instance,
        ],
    );
    assert_eq!(hmac["access_key_id"].as_str().unwrap().len(), 32);
    assert_eq!(hmac["secret_access_key"].as_str().unwrap().len(), 48);

    let p = json(
        &server,
        &[
            "iam",
            "policy",
            "create",
            "--iam-id",
            &sid_iam,
            "--role",
            "Writer",
            "--service",
            "cloud-object-storage",
            "--instance",
            &instance,
        ],
    );
    let policy_id = p["id"].as_str().unwrap().to_owned();
    let listed = json(&server, &["iam", "policy", "list", "--iam-id", &sid_iam]);
    assert_eq!(listed["policies"][0]["roles"][0]["display_name"], "Writer");

    // Refusals are clear and the command fails.
    let (ok, _, err) = coffer(
        &server,
        &["iam", "policy", "create", "--iam-id", &sid_iam, "--role", "Owner"],
    );
    assert!(!ok && err.contains("unknown role"), "{err}");
    let (ok, _, err) = coffer(
        &server,
        &[
            "iam",
            "policy",
            "create",
            "--iam-id",
            &sid_iam,
            "--role",
            "Reader",
            "--service",
            "no-such-service",
        ],
    );
    assert!(!ok && err.contains("unknown service"), "{err}");
    let (ok, _, err) = coffer(
        &server,
        &[
            "iam",
            "user",
            "list",
            "--api-key",
            "not-a-valid-key-not-a-valid-key",
        ],
    );
    assert!(!ok && err.contains("login refused"), "{err}");

    let (ok, out, _) = coffer(&server, &["iam", "policy", "delete", &policy_id]);
    assert!(ok && out.contains(&policy_id));
    let (ok, _, _) = coffer(
        &server,
        &["iam", "hmac", "delete", hmac["access_key_id"].as_str().unwrap()],
    );
    assert!(ok);
    let (ok, _, _) = coffer(
        &server,
        &["iam", "serviceid", "delete", sid["id"].as_str().unwrap()],
    );
    assert!(ok);
    let keys = json(&server, &["iam", "apikey", "list", "--iam-id", &sid_iam]);
    assert!(
        keys["apikeys"].as_array().unwrap().is_empty(),
        "deleting a service ID deletes its keys"
    );
    let (ok, _, _) = coffer(&server, &["iam", "user", "delete", &iam_id]);
    assert!(ok);
}

/// `coffer bench`, briefly, against a running server: it measures an encrypted and a plain
/// bucket (their blobs tell them apart: only the plain one's hold the body's bytes) and
/// reports every row it was asked for, the machine's limits and the KMS rates.
#[test]
fn bench_measures_an_encrypted_and_a_plain_bucket() {
    let server = Server::start();
    let report = json(
        &server,
        &[
            "bench",
            "--sizes",
            "1m,4k",
            "--seconds",
            "0.4",
            "--rounds",
            "2",
            "--concurrency",
            "2",
        ],
    );
    assert_eq!(
        report["targets"],
        serde_json::json!(["coffer encrypted", "coffer plain"])
    );
    let rows = report["rows"].as_array().unwrap();
    for label in ["PUT 1 MiB", "GET 1 MiB", "PUT 4 KiB", "GET 4 KiB"] {
        let row = rows.iter().find(|r| r["row"] == label).unwrap();
        for (target, rounds) in row["rounds"].as_array().unwrap().iter().enumerate() {
            let rounds = rounds.as_array().unwrap();
            assert_eq!(rounds.len(), 2, "{label}");
            assert!(
                rounds.iter().all(|v| v.as_f64().unwrap() > 0.0),
                "{label} {target}: {rounds:?}"
            );
        }
    }
    // Sizes not asked for are not measured.
    let put64 = rows.iter().find(|r| r["row"] == "PUT 64 MiB").unwrap();
    assert!(put64["values"].as_array().unwrap().iter().all(|v| v == 0.0));
    for limit in ["md5", "aes_256_gcm", "md5_plus_aes_256_gcm"] {
        assert!(report["limits_mb_s"][limit].as_f64().unwrap() > 0.0, "{limit}");
    }
    for plane in ["in_process_one_core", "http"] {
        for op in ["wrap", "unwrap"] {
            assert!(
                report["kms_ops_s"][plane][op].as_f64().unwrap() > 0.0,
                "{plane} {op}"
            );
        }
    }

    // The 1 MiB bodies are one repeated byte: a plain blob holds runs of it, a sealed one none.
    let run = [0xa5u8; 64];
    let blobs: Vec<bool> = server
        .files_under("blobs")
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .filter(|b| b.len() >= 1 << 20)
        .map(|b| b.windows(run.len()).any(|w| w == run))
        .collect();
    assert!(blobs.iter().any(|&plain| plain), "no plain blob");
    assert!(blobs.iter().any(|&plain| !plain), "no sealed blob");
}
