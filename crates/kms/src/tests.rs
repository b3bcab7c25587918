//! The KMS domain: ceremony, keys, wrap, lifecycle, registrations and events.

use std::sync::{Arc, Mutex};

use coffer_crypto::KeyMaterial;
use coffer_iam::{BootstrapRequest, Iam, Principal, ServiceKind, TokenConfig};
use coffer_storage::local::RedbMetaStore;
use zeroize::Zeroizing;

use crate::*;

struct Fixture {
    _dir: tempfile::TempDir,
    kms: Kms,
    iam: Iam,
    admin: Principal,
    instance: String,
    parts: Vec<KeyMaterial>,
}

fn fast_timing() -> Timing {
    Timing {
        rotate_min_interval_secs: 0,
        state_change_delay_secs: 0,
        purge_delay_secs: 0,
        restore_window_secs: 3600,
        sync_min_interval_secs: 0,
        month_secs: 1,
        dual_auth_window_secs: 3600,
    }
}

async fn fixture_with(timing: Timing) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(RedbMetaStore::open(&dir.path().join("m.redb")).unwrap());
    let iam = Iam::open(meta.clone(), TokenConfig::default()).await.unwrap();
    let boot = iam.bootstrap(BootstrapRequest::default()).await.unwrap();
    let admin = Principal::Identity {
        iam_id: boot.admin_iam_id.clone(),
        account: boot.account_id.clone(),
    };
    let kms = Kms::open(meta, iam.clone(), timing, None).await.unwrap();
    let instance = kms
        .create_instance(&admin, ServiceKind::HsCrypto, "us-south", "hpcs")
        .await
        .unwrap()
        .id;
    let (parts, vp) = parts::generate(2);
    kms.begin_software_init(&admin, &instance, 2, &vp).await.unwrap();
    for p in &parts {
        kms.load_part(&admin, &instance, p.clone()).await.unwrap();
    }
    Fixture {
        _dir: dir,
        kms,
        iam,
        admin,
        instance,
        parts,
    }
}

async fn fixture() -> Fixture {
    fixture_with(fast_timing()).await
}

fn root(name: &str) -> NewKey {
    NewKey {
        name: name.into(),
        ..NewKey::default()
    }
}

#[tokio::test]
async fn the_ceremony_unseals_only_with_every_right_part() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(RedbMetaStore::open(&dir.path().join("m.redb")).unwrap());
    let iam = Iam::open(meta.clone(), TokenConfig::default()).await.unwrap();
    let boot = iam.bootstrap(BootstrapRequest::default()).await.unwrap();
    let admin = Principal::Identity {
        iam_id: boot.admin_iam_id,
        account: boot.account_id,
    };
    let kms = Kms::open(meta.clone(), iam.clone(), fast_timing(), None)
        .await
        .unwrap();
    let id = kms
        .create_instance(&admin, ServiceKind::HsCrypto, "us-south", "i")
        .await
        .unwrap()
        .id;

    // Uninitialized: key operations answer as an uninitialized HPCS instance.
    assert!(matches!(
        kms.create_key(&admin, &id, root("k")).await,
        Err(KmsError::NotInitialized)
    ));

    let (parts, vp) = parts::generate(3);
    kms.begin_software_init(&admin, &id, 3, &vp).await.unwrap();
    let first = kms.load_part(&admin, &id, parts[0].clone()).await.unwrap();
    assert_eq!((first.loaded, first.needed, first.complete), (1, 3, false));
    kms.load_part(&admin, &id, parts[1].clone()).await.unwrap();
    // A missing part leaves it sealed.
    assert!(matches!(
        kms.create_key(&admin, &id, root("k")).await,
        Err(KmsError::NotInitialized)
    ));
    let done = kms.load_part(&admin, &id, parts[2].clone()).await.unwrap();
    assert!(done.complete);
    assert_eq!(done.verification_pattern, vp);
    let key = kms.create_key(&admin, &id, root("k")).await.unwrap();
    drop(kms);

    // After a restart the instance is sealed until the custodians load their parts again.
    let kms = Kms::open(meta, iam, fast_timing(), None).await.unwrap();
    assert!(matches!(
        kms.wrap(&admin, &id, &key.id, None, &[]).await,
        Err(KmsError::Sealed)
    ));
    assert!(kms.instance_info(&admin, &id).await.unwrap().sealed);
    // A wrong part is caught by the verification pattern, and everything loaded is discarded.
    kms.load_part(&admin, &id, parts[0].clone()).await.unwrap();
    kms.load_part(&admin, &id, parts[1].clone()).await.unwrap();
    let wrong = kms
        .load_part(&admin, &id, KeyMaterial::generate())
        .await
        .unwrap_err();
    assert!(wrong.to_string().contains("verification pattern"), "{wrong}");
    assert!(matches!(
        kms.wrap(&admin, &id, &key.id, None, &[]).await,
        Err(KmsError::Sealed)
    ));
    assert_eq!(kms.instance_info(&admin, &id).await.unwrap().parts_loaded, 0);
    for p in &parts {
        kms.load_part(&admin, &id, p.clone()).await.unwrap();
    }
    kms.wrap(&admin, &id, &key.id, None, &[]).await.unwrap();
}

#[tokio::test]
async fn wrap_unwrap_rewrap_with_aad_across_rotations() {
    let f = fixture().await;
    let key = f
        .kms
        .create_key(&f.admin, &f.instance, root("root"))
        .await
        .unwrap();
    let aad = vec!["bucket-crn".to_owned()];
    let dek = Zeroizing::new(b"0123456789abcdef0123456789abcdef".to_vec());
    let w = f
        .kms
        .wrap(&f.admin, &f.instance, &key.id, Some(dek.clone()), &aad)
        .await
        .unwrap();
    assert!(w.plaintext.is_none());
    let u = f
        .kms
        .unwrap(&f.admin, &f.instance, &key.id, &w.ciphertext, &aad)
        .await
        .unwrap();
    assert_eq!(u.plaintext, dek);
    assert!(u.rewrapped.is_none());
    let wrong = f
        .kms
        .unwrap(&f.admin, &f.instance, &key.id, &w.ciphertext, &["other".into()])
        .await
        .unwrap_err();
    assert_eq!(wrong.wire(), (422, "UNPROCESSABLE_CIPHERTEXT_ERR"));
    let other = f
        .kms
        .create_key(&f.admin, &f.instance, root("other"))
        .await
        .unwrap();
    assert!(
        f.kms
            .unwrap(&f.admin, &f.instance, &other.id, &w.ciphertext, &aad)
            .await
            .is_err()
    );

    let generated = f
        .kms
        .wrap(&f.admin, &f.instance, &key.id, None, &[])
        .await
        .unwrap();
    assert_eq!(generated.plaintext.as_ref().unwrap().len(), 32);

    f.kms
        .rotate_key(&f.admin, &f.instance, &key.id, None)
        .await
        .unwrap();
    let u = f
        .kms
        .unwrap(&f.admin, &f.instance, &key.id, &w.ciphertext, &aad)
        .await
        .unwrap();
    assert_eq!(u.plaintext, dek);
    let (rewrapped, newest) = u.rewrapped.expect("an old version's DEK comes back rewrapped");
    assert_ne!(newest, w.key_version);
    let r = f
        .kms
        .rewrap(&f.admin, &f.instance, &key.id, &w.ciphertext, &aad)
        .await
        .unwrap();
    assert_eq!(r.key_version, newest);
    for ct in [rewrapped, r.ciphertext] {
        assert_eq!(
            f.kms
                .unwrap(&f.admin, &f.instance, &key.id, &ct, &aad)
                .await
                .unwrap()
                .plaintext,
            dek
        );
    }
    assert_eq!(
        f.kms
            .key_versions(&f.admin, &f.instance, &key.id)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn states_and_their_rules() {
    let f = fixture().await;
    let key = f.kms.create_key(&f.admin, &f.instance, root("k")).await.unwrap();
    f.kms.disable_key(&f.admin, &f.instance, &key.id).await.unwrap();
    let e = f
        .kms
        .wrap(&f.admin, &f.instance, &key.id, None, &[])
        .await
        .unwrap_err();
    assert_eq!(e.wire(), (409, "KEY_ACTION_INVALID_STATE_ERR"));
    assert_eq!(
        f.kms
            .disable_key(&f.admin, &f.instance, &key.id)
            .await
            .unwrap_err()
            .wire()
            .0,
        409
    );
    f.kms.enable_key(&f.admin, &f.instance, &key.id).await.unwrap();
    f.kms
        .delete_key(&f.admin, &f.instance, &key.id, DeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(
        f.kms
            .delete_key(&f.admin, &f.instance, &key.id, DeleteOptions::default())
            .await
            .unwrap_err()
            .wire(),
        (410, "KEY_DELETED_ERR")
    );
    assert_eq!(
        f.kms
            .wrap(&f.admin, &f.instance, &key.id, None, &[])
            .await
            .unwrap_err()
            .wire()
            .0,
        410
    );
    f.kms
        .restore_key(&f.admin, &f.instance, &key.id, None)
        .await
        .unwrap();
    f.kms
        .wrap(&f.admin, &f.instance, &key.id, None, &[])
        .await
        .unwrap();
    f.kms
        .delete_key(&f.admin, &f.instance, &key.id, DeleteOptions::default())
        .await
        .unwrap();
    f.kms.purge_key(&f.admin, &f.instance, &key.id).await.unwrap();
    assert_eq!(
        f.kms
            .key_metadata(&f.admin, &f.instance, &key.id)
            .await
            .unwrap_err()
            .wire(),
        (404, "KEY_NOT_FOUND_ERR")
    );
}

#[tokio::test]
async fn ibm_timing_rules_are_enforced_by_default() {
    let f = fixture_with(Timing::default()).await;
    let key = f.kms.create_key(&f.admin, &f.instance, root("k")).await.unwrap();
    // A new key rotates at once; the second rotation within the hour is refused.
    f.kms
        .rotate_key(&f.admin, &f.instance, &key.id, None)
        .await
        .unwrap();
    assert_eq!(
        f.kms
            .rotate_key(&f.admin, &f.instance, &key.id, None)
            .await
            .unwrap_err()
            .wire(),
        (409, "KEY_ROTATION_NOT_PERMITTED")
    );
    f.kms.disable_key(&f.admin, &f.instance, &key.id).await.unwrap();
    assert_eq!(
        f.kms
            .enable_key(&f.admin, &f.instance, &key.id)
            .await
            .unwrap_err()
            .wire(),
        (409, "REQ_TOO_EARLY_ERR")
    );
    let k2 = f.kms.create_key(&f.admin, &f.instance, root("k2")).await.unwrap();
    f.kms
        .delete_key(&f.admin, &f.instance, &k2.id, DeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(
        f.kms
            .restore_key(&f.admin, &f.instance, &k2.id, None)
            .await
            .unwrap_err()
            .wire(),
        (409, "REQ_TOO_EARLY_ERR")
    );
    assert_eq!(
        f.kms
            .purge_key(&f.admin, &f.instance, &k2.id)
            .await
            .unwrap_err()
            .wire(),
        (409, "REQ_TOO_EARLY_ERR")
    );
}

struct Recorder(Mutex<Vec<KeyEvent>>);

#[async_trait::async_trait]
impl EventSubscriber for Recorder {
    async fn on_event(&self, event: &KeyEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

#[tokio::test]
async fn registrations_events_and_protected_deletion() {
    let f = fixture().await;
    let boot = f.iam.bootstrap(BootstrapRequest::default()).await.unwrap();
    let key = f.kms.create_key(&f.admin, &f.instance, root("k")).await.unwrap();
    let cos = Principal::Service {
        service: ServiceKind::ObjectStorage,
        instance: boot.cos_instance_id.clone(),
        account: boot.account_id.clone(),
    };
    let bucket = format!(
        "crn:v1:bluemix:public:cloud-object-storage:global:a/{}:{}:bucket:b1",
        boot.account_id, boot.cos_instance_id
    );

    // Without an authorization policy the service may not register.
    let denied = f
        .kms
        .put_registration(
            &cos,
            &f.instance,
            &key.id,
            &bucket,
            RegistrationInput::default(),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(denied.wire().0, 401);
    let policy = coffer_iam::PolicyInput {
        kind: coffer_iam::PolicyType::Authorization,
        subjects: vec![attrs(&[
            ("accountId", &boot.account_id),
            ("serviceName", "cloud-object-storage"),
            ("serviceInstance", &boot.cos_instance_id),
        ])],
        roles: vec![coffer_iam::PolicyRole {
            role_id: coffer_iam::Role::Reader.role_id(),
            display_name: None,
            description: None,
        }],
        resources: vec![attrs(&[
            ("accountId", &boot.account_id),
            ("serviceName", "hs-crypto"),
            ("serviceInstance", &f.instance),
        ])],
        description: None,
    };
    f.iam
        .create_policy(policy, &boot.account_id, &boot.admin_iam_id)
        .await
        .unwrap();
    // People may not write registrations, services may not delete keys.
    let e = f
        .kms
        .put_registration(
            &f.admin,
            &f.instance,
            &key.id,
            &bucket,
            RegistrationInput::default(),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(e.wire(), (403, "SERVICE_ONLY_ERR"));
    f.kms
        .put_registration(
            &cos,
            &f.instance,
            &key.id,
            &bucket,
            RegistrationInput::default(),
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        f.kms
            .delete_key(&cos, &f.instance, &key.id, DeleteOptions::default())
            .await
            .unwrap_err()
            .wire()
            .0,
        401
    );

    let recorder = Arc::new(Recorder(Mutex::new(Vec::new())));
    f.kms.subscribe(ServiceKind::ObjectStorage, recorder.clone());
    f.kms
        .rotate_key(&f.admin, &f.instance, &key.id, None)
        .await
        .unwrap();
    f.kms.disable_key(&f.admin, &f.instance, &key.id).await.unwrap();
    {
        let seen = recorder.0.lock().unwrap();
        assert_eq!(
            seen.iter().map(|e| e.kind).collect::<Vec<_>>(),
            [EventKind::Rotate, EventKind::Disable]
        );
        assert_eq!(seen[0].resources, std::slice::from_ref(&bucket));
        assert!(seen[0].key_crn.ends_with(&format!(":key:{}", key.id)));
    }
    f.kms.enable_key(&f.admin, &f.instance, &key.id).await.unwrap();

    let e = f
        .kms
        .delete_key(&f.admin, &f.instance, &key.id, DeleteOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.wire(), (409, "PROTECTED_RESOURCE_ERR"));
    let listed = f
        .kms
        .list_registrations(
            &f.admin,
            &f.instance,
            None,
            Some(&bucket.replace(":bucket:b1", ":*:*")),
            None,
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);

    // Events stay pending until acknowledged; sync delivers pending ones again.
    let first = recorder.0.lock().unwrap()[0].clone();
    f.kms
        .event_ack(
            &cos,
            &f.instance,
            &first.id,
            "DEK_ENABLED",
            Some(first.key_version.clone()),
        )
        .await
        .unwrap();
    let redelivered = f.kms.sync_key(&f.admin, &f.instance, &key.id).await.unwrap();
    assert_eq!(redelivered, 2, "disable and enable are not acknowledged yet");

    f.kms
        .delete_key(&f.admin, &f.instance, &key.id, DeleteOptions { force: true })
        .await
        .unwrap();
    assert_eq!(recorder.0.lock().unwrap().last().unwrap().kind, EventKind::Delete);
    assert!(
        f.kms
            .list_registrations(&f.admin, &f.instance, None, None, None)
            .await
            .unwrap()
            .is_empty()
    );
}

fn attrs(pairs: &[(&str, &str)]) -> coffer_iam::Attributes {
    coffer_iam::Attributes {
        attributes: pairs
            .iter()
            .map(|(n, v)| coffer_iam::Attribute {
                name: (*n).into(),
                value: (*v).into(),
                operator: None,
            })
            .collect(),
    }
}

#[tokio::test]
async fn dual_authorization_needs_two_people() {
    let f = fixture().await;
    let account = f.admin.account().to_owned();
    let bob = f.iam.create_user(&account, "bob").await.unwrap();
    let policy = coffer_iam::PolicyInput {
        kind: coffer_iam::PolicyType::Access,
        subjects: vec![attrs(&[("iam_id", &bob.iam_id)])],
        roles: vec![coffer_iam::PolicyRole {
            role_id: coffer_iam::Role::Manager.role_id(),
            display_name: None,
            description: None,
        }],
        resources: vec![attrs(&[("accountId", &account)])],
        description: None,
    };
    f.iam.create_policy(policy, &account, "test").await.unwrap();
    let bob = Principal::Identity {
        iam_id: bob.iam_id,
        account,
    };
    let key = f
        .kms
        .create_key(
            &f.admin,
            &f.instance,
            NewKey {
                dual_auth: Some(true),
                ..root("dual")
            },
        )
        .await
        .unwrap();
    let e = f
        .kms
        .delete_key(&f.admin, &f.instance, &key.id, DeleteOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.wire(), (409, "AUTHORIZATIONS_NOT_MET"));
    f.kms
        .set_key_for_deletion(&f.admin, &f.instance, &key.id, true)
        .await
        .unwrap();
    let e = f
        .kms
        .delete_key(&f.admin, &f.instance, &key.id, DeleteOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        e.wire(),
        (409, "AUTHORIZATIONS_NOT_MET"),
        "the one who set it cannot also delete"
    );
    f.kms
        .delete_key(&bob, &f.instance, &key.id, DeleteOptions::default())
        .await
        .unwrap();
    let plain = f
        .kms
        .create_key(&f.admin, &f.instance, root("plain"))
        .await
        .unwrap();
    assert_eq!(
        f.kms
            .set_key_for_deletion(&f.admin, &f.instance, &plain.id, true)
            .await
            .unwrap_err()
            .wire(),
        (409, "NOT_DUAL_AUTH_ERR")
    );
}

#[tokio::test]
async fn master_key_rotation_reseals_the_keystore_online() {
    let f = fixture().await;
    let key = f.kms.create_key(&f.admin, &f.instance, root("k")).await.unwrap();
    let w = f
        .kms
        .wrap(&f.admin, &f.instance, &key.id, None, &[])
        .await
        .unwrap();
    let before = f
        .kms
        .key_metadata(&f.admin, &f.instance, &key.id)
        .await
        .unwrap()
        .versions[0]
        .sealed
        .clone();
    let (new_parts, new_vp) = parts::generate(3);
    f.kms
        .begin_master_rotation(&f.admin, &f.instance, 3, &new_vp)
        .await
        .unwrap();
    for p in &new_parts[..2] {
        f.kms
            .load_new_part(&f.admin, &f.instance, p.clone())
            .await
            .unwrap();
        // Online: the key keeps working while the new parts arrive.
        f.kms
            .unwrap(&f.admin, &f.instance, &key.id, &w.ciphertext, &[])
            .await
            .unwrap();
    }
    let done = f
        .kms
        .load_new_part(&f.admin, &f.instance, new_parts[2].clone())
        .await
        .unwrap();
    assert!(done.complete);
    let after = f
        .kms
        .key_metadata(&f.admin, &f.instance, &key.id)
        .await
        .unwrap()
        .versions[0]
        .sealed
        .clone();
    assert_ne!(before, after, "the version was resealed");
    f.kms
        .unwrap(&f.admin, &f.instance, &key.id, &w.ciphertext, &[])
        .await
        .unwrap();
    let info = f.kms.instance_info(&f.admin, &f.instance).await.unwrap();
    assert_eq!(info.verification_pattern.as_deref(), Some(new_vp.as_str()));
    assert!(!f.parts.is_empty());
}

#[tokio::test]
async fn automatic_rotation_follows_the_policy() {
    let f = fixture().await;
    let key = f
        .kms
        .create_key(
            &f.admin,
            &f.instance,
            NewKey {
                rotation: Some(RotationPolicy {
                    enabled: true,
                    interval_month: 1,
                }),
                ..root("auto")
            },
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(f.kms.rotate_due().await.unwrap(), 1);
    assert_eq!(
        f.kms
            .key_versions(&f.admin, &f.instance, &key.id)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn standard_keys_and_imports() {
    let f = fixture().await;
    let std_key = NewKey {
        extractable: true,
        payload: Some(Zeroizing::new(b"a secret".to_vec())),
        ..root("std")
    };
    let k = f.kms.create_key(&f.admin, &f.instance, std_key).await.unwrap();
    let (_, payload) = f.kms.get_key(&f.admin, &f.instance, &k.id).await.unwrap();
    assert_eq!(payload.unwrap().as_slice(), b"a secret");
    assert_eq!(
        f.kms
            .wrap(&f.admin, &f.instance, &k.id, None, &[])
            .await
            .unwrap_err()
            .wire(),
        (400, "KEY_ROOT_REQ_ERR")
    );

    let imported = NewKey {
        payload: Some(Zeroizing::new(vec![7u8; 32])),
        ..root("imported")
    };
    let ik = f.kms.create_key(&f.admin, &f.instance, imported).await.unwrap();
    assert!(ik.imported);
    assert_eq!(
        f.kms.get_key(&f.admin, &f.instance, &ik.id).await.unwrap().1,
        None,
        "root material never comes back"
    );
    assert_eq!(
        f.kms
            .rotate_key(&f.admin, &f.instance, &ik.id, None)
            .await
            .unwrap_err()
            .wire(),
        (400, "KEY_PAYLOAD_REQ_ERR")
    );
    let bad = NewKey {
        payload: Some(Zeroizing::new(vec![1u8; 20])),
        ..root("bad")
    };
    assert_eq!(
        f.kms
            .create_key(&f.admin, &f.instance, bad)
            .await
            .unwrap_err()
            .wire()
            .0,
        400
    );

    // Secure import through an import token.
    f.kms
        .create_import_token(&f.admin, &f.instance, None, Some(2))
        .await
        .unwrap();
    let token = f.kms.retrieve_import_token(&f.admin, &f.instance).await.unwrap();
    assert!(token.public_pem.contains("PUBLIC KEY"));
    assert_eq!(token.remaining, 1);
}

#[tokio::test]
async fn pkcs11_instances_unseal_themselves_at_start() {
    if !crate::provider::pkcs11_tests::in_softhsm("tests::pkcs11_instances_unseal_themselves_at_start") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(RedbMetaStore::open(&dir.path().join("m.redb")).unwrap());
    let iam = Iam::open(meta.clone(), TokenConfig::default()).await.unwrap();
    let boot = iam.bootstrap(BootstrapRequest::default()).await.unwrap();
    let admin = Principal::Identity {
        iam_id: boot.admin_iam_id,
        account: boot.account_id,
    };
    let cfg = Pkcs11Config {
        module: crate::provider::pkcs11_tests::module(),
        token_label: crate::provider::pkcs11_tests::LABEL.into(),
        pin: coffer_iam::SecretString::new(crate::provider::pkcs11_tests::PIN.into()),
    };
    let kms = Kms::open(meta.clone(), iam.clone(), fast_timing(), Some(cfg.clone()))
        .await
        .unwrap();
    let id = kms
        .create_instance(&admin, ServiceKind::HsCrypto, "us-south", "hsm")
        .await
        .unwrap()
        .id;
    let vp = kms.init_pkcs11(&admin, &id).await.unwrap();
    assert!(vp.starts_with("pkcs11:"));
    let key = kms.create_key(&admin, &id, root("in-hsm")).await.unwrap();
    let w = kms
        .wrap(&admin, &id, &key.id, None, &["aad".into()])
        .await
        .unwrap();
    drop(kms);
    let kms = Kms::open(meta, iam, fast_timing(), Some(cfg)).await.unwrap();
    let u = kms
        .unwrap(&admin, &id, &key.id, &w.ciphertext, &["aad".into()])
        .await
        .unwrap();
    assert_eq!(u.plaintext, w.plaintext.unwrap());
    assert!(!kms.instance_info(&admin, &id).await.unwrap().sealed);
}
