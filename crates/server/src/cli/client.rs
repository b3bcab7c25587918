//! A small JSON client for the control plane.

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub struct ControlClient {
    endpoint: String,
    token: String,
    http: Client<HttpConnector, Full<Bytes>>,
    /// The account of the authenticated identity (from the token's claims).
    pub account: String,
}

impl ControlClient {
    /// Exchanges an API key for an access token at `/identity/token`.
    pub async fn login(endpoint: &str, api_key: &str) -> anyhow::Result<Self> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let http = Client::builder(TokioExecutor::new()).build_http();
        let form = format!("grant_type=urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey&apikey={api_key}");
        let req = Request::post(format!("{endpoint}/identity/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))?;
        let (status, body) = send(&http, req)
            .await
            .with_context(|| format!("reaching {endpoint}"))?;
        if !status.is_success() {
            bail!("login refused ({status}): {}", error_message(&body));
        }
        let token = body["access_token"]
            .as_str()
            .context("no access_token in the token response")?
            .to_owned();
        let claims = token
            .split('.')
            .nth(1)
            .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok());
        let claims: Value = claims
            .and_then(|c| serde_json::from_slice(&c).ok())
            .unwrap_or_default();
        Ok(Self {
            account: claims["account"]["bss"].as_str().unwrap_or_default().to_owned(),
            endpoint,
            token,
            http,
        })
    }

    /// The access token, for callers that send their own requests (the benchmark).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Sends a request; a non-2xx answer becomes an error with the server's message.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        self.call_with(method, path, body, &[]).await
    }

    /// [`ControlClient::call`] with extra headers.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let mut req = Request::builder();
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .method(method)
            .uri(format!("{}{path}", self.endpoint))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(Full::new(bytes))?;
        let (status, body) = send(&self.http, req).await?;
        if !status.is_success() {
            bail!("{status}: {}", error_message(&body));
        }
        Ok(body)
    }
}

async fn send(
    http: &Client<HttpConnector, Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<(hyper::StatusCode, Value)> {
    let resp = http.request(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    Ok((status, body))
}

/// The message of any of coffer's error shapes.
fn error_message(body: &Value) -> String {
    body["errors"][0]["message"]
        .as_str()
        .or_else(|| body["errorMessage"].as_str())
        .or_else(|| body["resources"][0]["errorMsg"].as_str())
        .unwrap_or("no details")
        .to_owned()
}
