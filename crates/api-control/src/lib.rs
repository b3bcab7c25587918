//! The control plane: every non-S3 HTTP API of coffer, as one axum router.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

/// What the control plane needs to answer.
#[derive(Clone, Debug)]
pub struct ControlState {
    pub region: String,
}

pub fn router(state: ControlState) -> Router {
    Router::new().route("/health", get(health)).with_state(state)
}

async fn health(axum::extract::State(state): axum::extract::State<ControlState>) -> Json<Value> {
    Json(
        json!({ "status": "ok", "service": "coffer", "version": env!("CARGO_PKG_VERSION"), "region": state.region }),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn health_answers_ok() {
        let app = super::router(super::ControlState {
            region: "us-south".into(),
        });
        let resp = app
            .oneshot(axum::http::Request::get("/health").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], "ok");
    }
}
