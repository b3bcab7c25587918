//! Cloud Resource Names: `crn:v1:<cname>:<ctype>:<service>:<location>:<scope>:<instance>:<type>:<resource>`.

use std::fmt;
use std::str::FromStr;

/// A parsed CRN. Empty segments are kept as empty strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Crn {
    pub cname: String,
    pub ctype: String,
    pub service: String,
    pub location: String,
    pub scope: String,
    pub instance: String,
    pub resource_type: String,
    pub resource: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a CRN: expected crn:v1 and ten colon-separated segments")]
pub struct ParseCrnError;

impl Crn {
    /// The CRN of a service instance: `crn:v1:bluemix:public:<service>:<location>:a/<account>:<id>::`.
    pub fn instance(service: &str, location: &str, account: &str, id: &str) -> Self {
        Self {
            cname: "bluemix".into(),
            ctype: "public".into(),
            service: service.into(),
            location: location.into(),
            scope: format!("a/{account}"),
            instance: id.into(),
            resource_type: String::new(),
            resource: String::new(),
        }
    }

    /// A resource inside this instance (for example `bucket:<name>` or `key:<id>`).
    pub fn child(&self, resource_type: &str, resource: &str) -> Self {
        Self {
            resource_type: resource_type.into(),
            resource: resource.into(),
            ..self.clone()
        }
    }

    /// The account of the scope, with or without the `a/` prefix.
    pub fn account(&self) -> &str {
        self.scope.strip_prefix("a/").unwrap_or(&self.scope)
    }
}

impl FromStr for Crn {
    type Err = ParseCrnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Clients sometimes send the CRN URL-encoded (`%3A` for `:`).
        let decoded;
        let s = if s.contains('%') {
            decoded = s
                .replace("%3A", ":")
                .replace("%3a", ":")
                .replace("%2F", "/")
                .replace("%2f", "/");
            decoded.as_str()
        } else {
            s
        };
        let parts: Vec<&str> = s.split(':').collect();
        let [
            crn,
            v1,
            cname,
            ctype,
            service,
            location,
            scope,
            instance,
            rtype,
            resource,
        ] = parts.as_slice()
        else {
            return Err(ParseCrnError);
        };
        if *crn != "crn" || *v1 != "v1" || service.is_empty() {
            return Err(ParseCrnError);
        }
        Ok(Self {
            cname: (*cname).into(),
            ctype: (*ctype).into(),
            service: (*service).into(),
            location: (*location).into(),
            scope: (*scope).into(),
            instance: (*instance).into(),
            resource_type: (*rtype).into(),
            resource: (*resource).into(),
        })
    }
}

impl fmt::Display for Crn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "crn:v1:{}:{}:{}:{}:{}:{}:{}:{}",
            self.cname,
            self.ctype,
            self.service,
            self.location,
            self.scope,
            self.instance,
            self.resource_type,
            self.resource
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_instance_and_key_crns() {
        let i = Crn::instance("kms", "us-south", "abc", "1234");
        assert_eq!(i.to_string(), "crn:v1:bluemix:public:kms:us-south:a/abc:1234::");
        let k = i.child("key", "k1");
        let s = k.to_string();
        assert_eq!(s, "crn:v1:bluemix:public:kms:us-south:a/abc:1234:key:k1");
        assert_eq!(s.parse::<Crn>().unwrap(), k);
        assert_eq!(k.account(), "abc");
    }

    #[test]
    fn accepts_url_encoded_and_rejects_garbage() {
        let c: Crn = "crn%3Av1%3Abluemix%3Apublic%3Akms%3Aus-south%3Aa%2Fabc%3Aid%3Akey%3Ak"
            .parse()
            .unwrap();
        assert_eq!(c.resource, "k");
        for bad in [
            "",
            "crn:v1",
            "crn:v2:a:b:c:d:e:f:g:h",
            "urn:v1:a:b:c:d:e:f:g:h",
            "crn:v1:a:b::d:e:f:g:h",
            "crn:v1:a:b:c:d:e:f:g:h:i",
        ] {
            assert!(bad.parse::<Crn>().is_err(), "{bad}");
        }
    }
}
