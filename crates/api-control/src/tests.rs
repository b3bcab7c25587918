//! The control plane in process: the IAM token service, identities and policies.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use coffer_iam::{BootstrapRequest, Iam, TokenConfig};
use coffer_storage::local::RedbMetaStore;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{ControlState, router};

struct Fixture {
    _dir: tempfile::TempDir,
    app: axum::Router,
    account: String,
    admin_key: String,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(RedbMetaStore::open(&dir.path().join("m.redb")).unwrap());
    let meta_for_kms = meta.clone();
    let iam = Iam::open(meta, TokenConfig::default()).await.unwrap();
    let boot = iam.bootstrap(BootstrapRequest::default()).await.unwrap();
    let admin_key = iam
        .admin_apikey(&boot, None, None)
        .await
        .unwrap()
        .expose()
        .to_owned();
    let kms = coffer_kms::Kms::open(
        meta_for_kms.clone(),
        iam.clone(),
        coffer_kms::Timing::default(),
        None,
    )
    .await
    .unwrap();
    let blobs =
        std::sync::Arc::new(coffer_storage::local::FsBlobStore::open(&dir.path().join("blobs")).unwrap());
    let store = coffer_objects::Store::new(meta_for_kms.clone(), blobs, "us-south");
    let state = ControlState {
        iam,
        kms,
        store,
        region: "us-south".into(),
        public_url: "http://control".into(),
    };
    Fixture {
        _dir: dir,
        app: router(state),
        account: boot.account_id,
        admin_key,
    }
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn token(app: &axum::Router, apikey: &str) -> (StatusCode, Value) {
    let body = format!(
        "grant_type=urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey&apikey={apikey}&response_type=cloud_iam"
    );
    let req = Request::post("/identity/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", "Basic Yng6Yng=")
        .body(Body::from(body))
        .unwrap();
    call(app, req).await
}

fn authed(method: &str, uri: &str, token: &str, body: Option<Value>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap()
}

#[tokio::test]
async fn token_grant_and_errors() {
    let f = fixture().await;
    let (status, body) = token(&f.app, &f.admin_key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);
    assert!(body["refresh_token"].is_string() && body["expiration"].is_i64());

    let (status, body) = token(&f.app, "unknown-key-unknown-key-unknown").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errorCode"], "BXNIM0415E");
    assert!(body["context"]["requestId"].is_string());

    let req = Request::post("/oidc/token")
        .body(Body::from("grant_type=password"))
        .unwrap();
    let (status, body) = call(&f.app, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errorMessage"].as_str().unwrap().contains("grant_type"));

    let (status, body) = call(
        &f.app,
        Request::get("/identity/keys").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["keys"][0]["kty"], "OKP");
}

#[tokio::test]
async fn policies_need_a_valid_token_and_valid_input() {
    let f = fixture().await;
    let (_, t) = token(&f.app, &f.admin_key).await;
    let t = t["access_token"].as_str().unwrap().to_owned();

    let (status, body) = call(&f.app, authed("GET", "/v1/policies", "not-a-token", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errors"][0]["code"], "invalid_token");

    let bad = Request::post("/v1/policies")
        .header("authorization", format!("Bearer {t}"))
        .body(Body::from("{ not json"))
        .unwrap();
    let (status, body) = call(&f.app, bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status_code"], 400);

    let unknown_service = json!({
        "type": "access",
        "subjects": [{"attributes": [{"name": "iam_id", "value": "IBMid-NOBODY0000"}]}],
        "roles": [{"role_id": "crn:v1:bluemix:public:iam::::serviceRole:Reader"}],
        "resources": [{"attributes": [{"name": "accountId", "value": f.account}, {"name": "serviceName", "value": "nope"}]}],
    });
    let (status, body) = call(&f.app, authed("POST", "/v1/policies", &t, Some(unknown_service))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, user) = call(
        &f.app,
        authed("POST", "/v1/users", &t, Some(json!({"name": "alice"}))),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let alice = user["iam_id"].as_str().unwrap();
    let policy = json!({
        "type": "access",
        "subjects": [{"attributes": [{"name": "iam_id", "value": alice}]}],
        "roles": [{"role_id": "crn:v1:bluemix:public:iam::::serviceRole:Reader"}],
        "resources": [{"attributes": [{"name": "accountId", "value": f.account}, {"name": "serviceName", "value": "cloud-object-storage"}]}],
    });
    let (status, created) = call(&f.app, authed("POST", "/v1/policies", &t, Some(policy))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["roles"][0]["display_name"], "Reader");
    let id = created["id"].as_str().unwrap();
    let (status, got) = call(&f.app, authed("GET", &format!("/v1/policies/{id}"), &t, None)).await;
    assert_eq!((status, &got["id"]), (StatusCode::OK, &created["id"]));
    let (status, list) = call(
        &f.app,
        authed(
            "GET",
            &format!("/v1/policies?account_id={}&iam_id={alice}", f.account),
            &t,
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["policies"].as_array().unwrap().len(), 1);

    // Alice (a Reader of object storage) may not manage policies.
    let (status, k) = call(
        &f.app,
        authed(
            "POST",
            "/v1/apikeys",
            &t,
            Some(json!({"name": "k", "iam_id": alice})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, at) = token(&f.app, k["apikey"].as_str().unwrap()).await;
    let at = at["access_token"].as_str().unwrap();
    let (status, _) = call(&f.app, authed("DELETE", &format!("/v1/policies/{id}"), at, None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, _) = call(&f.app, authed("DELETE", &format!("/v1/policies/{id}"), &t, None)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&f.app, authed("GET", &format!("/v1/policies/{id}"), &t, None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
