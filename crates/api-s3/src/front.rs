//! What wraps the s3s service: request and response fixes that s3s's generated code cannot
//! express.

use coffer_iam::Iam;
use futures::future::BoxFuture;
use http::{Method, StatusCode, header};
use hyper::body::Incoming;
use s3s::service::S3Service;
use s3s::{Body, HttpError, HttpResponse};

use crate::access::{Caller, caller_for_hmac};

/// The S3 endpoint as served: s3s's service plus fixes.
#[derive(Clone)]
pub struct S3Front {
    inner: S3Service,
    iam: Iam,
}

impl S3Front {
    pub fn new(inner: S3Service, iam: Iam) -> Self {
        Self { inner, iam }
    }
}

impl hyper::service::Service<http::Request<Incoming>> for S3Front {
    type Response = HttpResponse;
    type Error = HttpError;
    type Future = BoxFuture<'static, Result<HttpResponse, HttpError>>;

    fn call(&self, mut req: http::Request<Incoming>) -> Self::Future {
        let head = req.method() == Method::HEAD;
        let has_body = has_body(&req);
        let bearer = bearer_token(&req);
        let (inner, iam) = (self.inner.clone(), self.iam.clone());
        Box::pin(async move {
            // An IAM token (ibm_boto3 in oauth mode): verified here, then s3s sees an anonymous
            // request, which `Access` accepts with the verified caller attached.
            if let Some(token) = bearer {
                match iam.principal_for_token(&token).await {
                    Ok(principal) => {
                        req.extensions_mut().insert(Caller {
                            principal,
                            hmac_instance: None,
                        });
                        // s3s would try to read the header as a signature; the token has
                        // done its work.
                        req.headers_mut().remove(header::AUTHORIZATION);
                    }
                    Err(e) => return Ok(token_refused(e)),
                }
            }
            let whole_object = MultiRange::of(&req);
            let mut resp = hyper::service::Service::call(&inner, req).await?;
            if let Some(retry) = whole_object
                && retry.was_refused(&resp)
                && let Some(again) = retry.request(&iam).await
            {
                resp = inner.call(again).await?;
            }
            // s3s always answers HEAD object with 200; a ranged (or part) HEAD is a 206, as in S3.
            if head && resp.status() == StatusCode::OK && resp.headers().contains_key(header::CONTENT_RANGE) {
                *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            }
            // An error may come before the body was read (a client waiting for 100-continue has
            // not sent it); the connection then cannot be reused, and the client must know.
            if has_body && (resp.status().is_client_error() || resp.status().is_server_error()) {
                resp.headers_mut()
                    .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
            }
            Ok(resp)
        })
    }
}

fn bearer_token(req: &http::Request<Incoming>) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// An expired, tampered or foreign token: 401, with an S3 error body.
fn token_refused(e: coffer_iam::TokenError) -> HttpResponse {
    let code = if e == coffer_iam::TokenError::Expired {
        "ExpiredToken"
    } else {
        "InvalidToken"
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{e}</Message></Error>"
    );
    let mut resp = http::Response::new(Body::from(bytes::Bytes::from(body)));
    *resp.status_mut() = StatusCode::UNAUTHORIZED;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    resp
}

fn has_body(req: &http::Request<Incoming>) -> bool {
    let h = req.headers();
    h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v != "0")
}

/// A GET with several ranges. S3 serves one range only and answers such a request with the
/// whole object; s3s refuses the header instead, after it has verified the signature. Then the
/// request is repeated without the Range header, as the caller it was verified to come from.
struct MultiRange {
    parts: http::request::Parts,
    access_key: Option<String>,
}

/// Query parameters of presigned URLs (SigV4 and SigV2).
const AUTH_PARAMS: [&str; 10] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
    "AWSAccessKeyId",
    "Signature",
    "Expires",
];

impl MultiRange {
    fn of(req: &http::Request<Incoming>) -> Option<Self> {
        let range = req.headers().get(header::RANGE)?.to_str().ok()?;
        if req.method() != Method::GET || !range.contains(',') {
            return None;
        }
        let mut builder = http::Request::builder()
            .method(Method::GET)
            .uri(without_auth_params(req.uri())?);
        for (name, value) in req.headers() {
            if name != header::RANGE
                && name != header::AUTHORIZATION
                && !name.as_str().starts_with("x-amz-content-")
            {
                builder = builder.header(name, value);
            }
        }
        let (mut parts, ()) = builder.body(()).ok()?.into_parts();
        if let Some(caller) = req.extensions().get::<Caller>() {
            parts.extensions.insert(caller.clone());
        }
        Some(Self {
            parts,
            access_key: access_key(req),
        })
    }

    fn was_refused(&self, resp: &HttpResponse) -> bool {
        resp.status() == StatusCode::BAD_REQUEST
            && resp.body().bytes().is_some_and(|b| {
                let text = String::from_utf8_lossy(&b);
                text.contains("<Code>InvalidArgument</Code>") && text.contains("invalid header: range")
            })
    }

    async fn request(self, iam: &Iam) -> Option<http::Request<Body>> {
        let mut parts = self.parts;
        if parts.extensions.get::<Caller>().is_none() {
            let caller = caller_for_hmac(iam, self.access_key.as_deref()?).await.ok()?;
            parts.extensions.insert(caller);
        }
        Some(http::Request::from_parts(parts, Body::empty()))
    }
}

fn without_auth_params(uri: &http::Uri) -> Option<http::Uri> {
    let Some(query) = uri.query() else {
        return Some(uri.clone());
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| {
            !AUTH_PARAMS
                .iter()
                .any(|p| kv.split('=').next().is_some_and(|k| k.eq_ignore_ascii_case(p)))
        })
        .collect();
    let pq = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    pq.parse().ok()
}

/// The access key a request was signed with, from the Authorization header or the URL.
fn access_key(req: &http::Request<Incoming>) -> Option<String> {
    if let Some(auth) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256") {
            let cred = rest
                .split(',')
                .find_map(|p| p.trim().strip_prefix("Credential="))?;
            return cred.split('/').next().map(str::to_owned);
        }
        return auth
            .strip_prefix("AWS ")
            .and_then(|r| r.split(':').next())
            .map(str::to_owned);
    }
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        match k {
            "X-Amz-Credential" => v
                .replace("%2F", "/")
                .replace("%2f", "/")
                .split('/')
                .next()
                .map(str::to_owned),
            "AWSAccessKeyId" => Some(v.to_owned()),
            _ => None,
        }
    })
}
