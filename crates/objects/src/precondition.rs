//! Conditional requests (RFC 9110 §13, as S3 applies them).

use crate::object::ObjectInfo;
use crate::{Error, Result};

/// The conditions of a read, or of a copy's source. ETags are compared without quotes or a
/// weak prefix; `*` matches any object. Times are Unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<i64>,
    pub if_unmodified_since: Option<i64>,
}

fn normalize(etag: &str) -> &str {
    let e = etag.trim();
    let e = e.strip_prefix("W/").unwrap_or(e);
    e.trim_matches('"')
}

fn matches(cond: &str, etag: &str) -> bool {
    cond.split(',')
        .map(normalize)
        .any(|c| c == "*" || c == normalize(etag))
}

impl Preconditions {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// For GET and HEAD: `PreconditionFailed` (412) or `NotModified` (304).
    ///
    /// If-Match takes precedence over If-Unmodified-Since, and If-None-Match over
    /// If-Modified-Since, as S3 documents.
    pub fn check(&self, info: &ObjectInfo) -> Result<()> {
        let modified = info.modified_ms.div_euclid(1000);
        match &self.if_match {
            Some(c) if !matches(c, &info.etag) => return Err(Error::PreconditionFailed),
            Some(_) => {}
            None => {
                if self.if_unmodified_since.is_some_and(|t| modified > t) {
                    return Err(Error::PreconditionFailed);
                }
            }
        }
        match &self.if_none_match {
            Some(c) if matches(c, &info.etag) => return Err(Error::NotModified),
            Some(_) => {}
            None => {
                if self.if_modified_since.is_some_and(|t| modified <= t) {
                    return Err(Error::NotModified);
                }
            }
        }
        Ok(())
    }

    /// For a copy source, where every failed condition is a 412.
    pub fn check_copy_source(&self, info: &ObjectInfo) -> Result<()> {
        match self.check(info) {
            Err(Error::NotModified) => Err(Error::PreconditionFailed),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(etag: &str, modified_s: i64) -> ObjectInfo {
        ObjectInfo {
            etag: etag.into(),
            modified_ms: modified_s * 1000 + 500,
            ..ObjectInfo::default()
        }
    }

    #[test]
    fn etag_conditions() {
        let o = info("abc", 100);
        let p = |m: Option<&str>, n: Option<&str>| Preconditions {
            if_match: m.map(Into::into),
            if_none_match: n.map(Into::into),
            ..Default::default()
        };
        assert!(p(Some("\"abc\""), None).check(&o).is_ok());
        assert!(p(Some("*"), None).check(&o).is_ok());
        assert!(p(Some("\"x\", \"abc\""), None).check(&o).is_ok());
        assert!(matches!(
            p(Some("\"x\""), None).check(&o),
            Err(Error::PreconditionFailed)
        ));
        assert!(matches!(
            p(None, Some("\"abc\"")).check(&o),
            Err(Error::NotModified)
        ));
        assert!(matches!(
            p(None, Some("W/\"abc\"")).check(&o),
            Err(Error::NotModified)
        ));
        assert!(p(None, Some("\"x\"")).check(&o).is_ok());
        assert!(matches!(
            p(None, Some("abc")).check_copy_source(&o),
            Err(Error::PreconditionFailed)
        ));
    }

    #[test]
    fn time_conditions_and_precedence() {
        let o = info("abc", 100);
        let t = |ims: Option<i64>, ius: Option<i64>| Preconditions {
            if_modified_since: ims,
            if_unmodified_since: ius,
            ..Default::default()
        };
        assert!(t(Some(99), None).check(&o).is_ok());
        assert!(matches!(t(Some(100), None).check(&o), Err(Error::NotModified)));
        assert!(t(None, Some(100)).check(&o).is_ok());
        assert!(matches!(
            t(None, Some(99)).check(&o),
            Err(Error::PreconditionFailed)
        ));
        // A matching If-Match overrides a failing If-Unmodified-Since.
        let p = Preconditions {
            if_match: Some("abc".into()),
            if_unmodified_since: Some(1),
            ..Default::default()
        };
        assert!(p.check(&o).is_ok());
        // A non-matching If-None-Match overrides a failing If-Modified-Since.
        let p = Preconditions {
            if_none_match: Some("zzz".into()),
            if_modified_since: Some(200),
            ..Default::default()
        };
        assert!(p.check(&o).is_ok());
    }
}
