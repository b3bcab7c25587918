//! Authentication (HMAC secrets for SigV4) and the per-request caller.

use coffer_iam::Iam;
use s3s::S3Result;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};

use crate::error::{access_denied, internal};

/// Who is calling: the identity and the object-storage instance its credential belongs to.
/// Put into the request's extensions by [`Access`] (or by a layer in front of s3s that
/// authenticated the request another way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub iam_id: String,
    pub account_id: String,
    pub instance_id: String,
}

pub struct Auth {
    pub iam: Iam,
}

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.iam.hmac(access_key).await {
            Ok(cred) => Ok(SecretKey::from(cred.secret_access_key.expose())),
            Err(coffer_iam::Error::NotFound) => Err(s3s::s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
            Err(e) => Err(internal(&e)),
        }
    }
}

pub struct Access {
    pub iam: Iam,
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if let Some(cred) = cx.credentials() {
            let hmac = self.iam.hmac(&cred.access_key).await.map_err(|e| internal(&e))?;
            let caller = Caller {
                iam_id: hmac.iam_id.clone(),
                account_id: hmac.account.clone(),
                instance_id: hmac.instance_id.clone(),
            };
            cx.extensions_mut().insert(caller);
            return Ok(());
        }
        if cx.extensions_mut().get::<Caller>().is_some() {
            return Ok(());
        }
        Err(access_denied())
    }
}

/// The caller whose HMAC credential signed a request.
pub async fn caller_for_hmac(iam: &Iam, access_key: &str) -> S3Result<Caller> {
    let hmac = iam.hmac(access_key).await.map_err(|e| internal(&e))?;
    Ok(Caller {
        iam_id: hmac.iam_id.clone(),
        account_id: hmac.account.clone(),
        instance_id: hmac.instance_id.clone(),
    })
}

/// The caller of a request that passed [`Access`].
pub fn caller<T>(req: &s3s::S3Request<T>) -> S3Result<&Caller> {
    req.extensions.get::<Caller>().ok_or_else(access_denied)
}
