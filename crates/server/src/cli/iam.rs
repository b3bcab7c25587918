//! `coffer iam ...`: users, service IDs, API keys, HMAC credentials and policies.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use coffer_iam::Role;
use hyper::Method;
use serde_json::{Value, json};

use super::Connection;
use super::output::{record, table};

#[derive(Debug, Args)]
pub struct IamCommand {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    what: Entity,
}

#[derive(Debug, Subcommand)]
enum Entity {
    /// People of the account.
    User {
        #[command(subcommand)]
        verb: UserVerb,
    },
    /// Non-person identities for applications.
    Serviceid {
        #[command(subcommand)]
        verb: ServiceIdVerb,
    },
    /// API keys (exchanged for IAM tokens).
    Apikey {
        #[command(subcommand)]
        verb: ApiKeyVerb,
    },
    /// HMAC key pairs for SigV4, bound to an identity and an object-storage instance.
    Hmac {
        #[command(subcommand)]
        verb: HmacVerb,
    },
    /// Access and authorization policies.
    Policy {
        #[command(subcommand)]
        verb: PolicyVerb,
    },
}

#[derive(Debug, Subcommand)]
enum UserVerb {
    Create {
        #[arg(long)]
        name: String,
    },
    List,
    Delete {
        iam_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum ServiceIdVerb {
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    List,
    Delete {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum ApiKeyVerb {
    /// Creates a key; its secret is shown once.
    Create {
        #[arg(long)]
        name: String,
        /// The identity the key authenticates as [default: yourself].
        #[arg(long)]
        iam_id: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    List {
        #[arg(long)]
        iam_id: Option<String>,
    },
    Delete {
        id: String,
    },
    Disable {
        id: String,
    },
    Enable {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum HmacVerb {
    /// Creates a key pair; the secret is shown once.
    Create {
        #[arg(long)]
        iam_id: String,
        /// The object-storage instance (GUID or CRN).
        #[arg(long)]
        instance: String,
    },
    List,
    Delete {
        access_key_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyVerb {
    /// An access policy: `--iam-id X --role Reader --service cloud-object-storage [--instance I]
    /// [--bucket B | --key K]`; an authorization policy: `--source-service cloud-object-storage
    /// [--source-instance I] --service kms [--instance J] --role Reader`.
    Create {
        /// The subject of an access policy (a user or service ID).
        #[arg(long, conflicts_with = "source_service")]
        iam_id: Option<String>,
        /// The subject service of an authorization policy.
        #[arg(long, requires = "service")]
        source_service: Option<String>,
        #[arg(long, requires = "source_service")]
        source_instance: Option<String>,
        /// Roles by name, comma-separated (Viewer, Editor, Administrator, Reader, Writer,
        /// Manager, ContentReader, ObjectReader, ObjectWriter, KeyPurge).
        #[arg(long, value_delimiter = ',', required = true)]
        role: Vec<String>,
        /// The target service [default: every service of the account].
        #[arg(long)]
        service: Option<String>,
        #[arg(long, requires = "service")]
        instance: Option<String>,
        #[arg(long, requires = "instance", conflicts_with = "key")]
        bucket: Option<String>,
        #[arg(long, requires = "instance")]
        key: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    List {
        /// access or authorization.
        #[arg(long = "type")]
        kind: Option<String>,
        #[arg(long)]
        iam_id: Option<String>,
    },
    Delete {
        id: String,
    },
}

fn rows(v: &Value, key: &str) -> Vec<Value> {
    v[key].as_array().cloned().unwrap_or_default()
}

fn attrs(pairs: &[(&str, Option<&String>)]) -> Value {
    let list: Vec<Value> = pairs
        .iter()
        .filter_map(|(n, v)| v.map(|v| json!({ "name": n, "value": v })))
        .collect();
    json!({ "attributes": list })
}

fn role_ids(names: &[String]) -> anyhow::Result<Vec<Value>> {
    names
        .iter()
        .map(|n| {
            let role = Role::ALL
                .into_iter()
                .find(|r| r.name().eq_ignore_ascii_case(n.trim()))
                .with_context(|| format!("unknown role {n:?}"))?;
            Ok(json!({ "role_id": role.role_id() }))
        })
        .collect()
}

impl IamCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let c = self.conn.connect().await?;
        let json = self.conn.json;
        match self.what {
            Entity::User { verb } => match verb {
                UserVerb::Create { name } => {
                    let v = c
                        .call(Method::POST, "/v1/users", Some(&json!({ "name": name })))
                        .await?;
                    record(
                        json,
                        &v,
                        &[("iam_id", "iam_id"), ("name", "name"), ("account_id", "account")],
                    );
                }
                UserVerb::List => {
                    let v = c.call(Method::GET, "/v1/users", None).await?;
                    table(
                        json,
                        &v,
                        &rows(&v, "users"),
                        &[("iam_id", "IAM ID"), ("name", "NAME"), ("created_at", "CREATED")],
                    );
                }
                UserVerb::Delete { iam_id } => {
                    c.call(Method::DELETE, &format!("/v1/users/{iam_id}"), None)
                        .await?;
                    println!("deleted user {iam_id}");
                }
            },
            Entity::Serviceid { verb } => match verb {
                ServiceIdVerb::Create { name, description } => {
                    let body = json!({ "name": name, "description": description });
                    let v = c.call(Method::POST, "/v1/serviceids", Some(&body)).await?;
                    record(json, &v, &[("id", "id"), ("iam_id", "iam_id"), ("name", "name")]);
                }
                ServiceIdVerb::List => {
                    let v = c.call(Method::GET, "/v1/serviceids", None).await?;
                    let cols = [
                        ("id", "ID"),
                        ("iam_id", "IAM ID"),
                        ("name", "NAME"),
                        ("created_at", "CREATED"),
                    ];
                    table(json, &v, &rows(&v, "serviceids"), &cols);
                }
                ServiceIdVerb::Delete { id } => {
                    c.call(Method::DELETE, &format!("/v1/serviceids/{id}"), None)
                        .await?;
                    println!("deleted service ID {id}");
                }
            },
            Entity::Apikey { verb } => match verb {
                ApiKeyVerb::Create {
                    name,
                    iam_id,
                    description,
                } => {
                    let body = json!({ "name": name, "iam_id": iam_id, "description": description });
                    let v = c.call(Method::POST, "/v1/apikeys", Some(&body)).await?;
                    record(
                        json,
                        &v,
                        &[
                            ("id", "id"),
                            ("iam_id", "iam_id"),
                            ("name", "name"),
                            ("apikey", "apikey"),
                        ],
                    );
                    if !json {
                        eprintln!("The API key is shown only once: store it now.");
                    }
                }
                ApiKeyVerb::List { iam_id } => {
                    let path = iam_id
                        .map_or_else(|| "/v1/apikeys".to_owned(), |i| format!("/v1/apikeys?iam_id={i}"));
                    let v = c.call(Method::GET, &path, None).await?;
                    let cols = [
                        ("id", "ID"),
                        ("iam_id", "IAM ID"),
                        ("name", "NAME"),
                        ("disabled", "DISABLED"),
                        ("created_at", "CREATED"),
                    ];
                    table(json, &v, &rows(&v, "apikeys"), &cols);
                }
                ApiKeyVerb::Delete { id } => {
                    c.call(Method::DELETE, &format!("/v1/apikeys/{id}"), None).await?;
                    println!("deleted API key {id}");
                }
                ApiKeyVerb::Disable { id } => {
                    c.call(Method::POST, &format!("/v1/apikeys/{id}/disable"), None)
                        .await?;
                    println!("disabled API key {id}");
                }
                ApiKeyVerb::Enable { id } => {
                    c.call(Method::DELETE, &format!("/v1/apikeys/{id}/disable"), None)
                        .await?;
                    println!("enabled API key {id}");
                }
            },
            Entity::Hmac { verb } => match verb {
                HmacVerb::Create { iam_id, instance } => {
                    let body = json!({ "iam_id": iam_id, "instance_id": instance });
                    let v = c.call(Method::POST, "/v1/hmac_keys", Some(&body)).await?;
                    let fields = [
                        ("access_key_id", "access_key_id"),
                        ("secret_access_key", "secret_access_key"),
                        ("iam_id", "iam_id"),
                        ("instance_id", "instance_id"),
                    ];
                    record(json, &v, &fields);
                    if !json {
                        eprintln!("The secret access key is shown only once: store it now.");
                    }
                }
                HmacVerb::List => {
                    let v = c.call(Method::GET, "/v1/hmac_keys", None).await?;
                    let cols = [
                        ("access_key_id", "ACCESS KEY ID"),
                        ("iam_id", "IAM ID"),
                        ("instance_id", "INSTANCE"),
                        ("created_at", "CREATED"),
                    ];
                    table(json, &v, &rows(&v, "hmac_keys"), &cols);
                }
                HmacVerb::Delete { access_key_id } => {
                    c.call(Method::DELETE, &format!("/v1/hmac_keys/{access_key_id}"), None)
                        .await?;
                    println!("deleted HMAC key {access_key_id}");
                }
            },
            Entity::Policy { verb } => policy(&c, json, verb).await?,
        }
        Ok(())
    }
}

async fn policy(c: &super::ControlClient, json: bool, verb: PolicyVerb) -> anyhow::Result<()> {
    match verb {
        PolicyVerb::Create {
            iam_id,
            source_service,
            source_instance,
            role,
            service,
            instance,
            bucket,
            key,
            description,
        } => {
            let account = c.account.clone();
            let (kind, subject) = match (iam_id, source_service) {
                (Some(id), None) => ("access", attrs(&[("iam_id", Some(&id))])),
                (None, Some(svc)) => (
                    "authorization",
                    attrs(&[
                        ("accountId", Some(&account)),
                        ("serviceName", Some(&svc)),
                        ("serviceInstance", source_instance.as_ref()),
                    ]),
                ),
                _ => bail!("name the subject: --iam-id (access) or --source-service (authorization)"),
            };
            let (rtype, resource) = match (&bucket, &key) {
                (Some(b), _) => (Some("bucket".to_owned()), Some(b)),
                (None, Some(k)) => (Some("key".to_owned()), Some(k)),
                (None, None) => (None, None),
            };
            let body = json!({
                "type": kind,
                "subjects": [subject],
                "roles": role_ids(&role)?,
                "resources": [attrs(&[
                    ("accountId", Some(&account)),
                    ("serviceName", service.as_ref()),
                    ("serviceInstance", instance.as_ref()),
                    ("resourceType", rtype.as_ref()),
                    ("resource", resource),
                ])],
                "description": description,
            });
            let v = c.call(Method::POST, "/v1/policies", Some(&body)).await?;
            record(json, &v, &[("id", "id"), ("type", "type"), ("state", "state")]);
        }
        PolicyVerb::List { kind, iam_id } => {
            let mut path = format!("/v1/policies?account_id={}", c.account);
            if let Some(k) = kind {
                path.push_str(&format!("&type={k}"));
            }
            if let Some(i) = iam_id {
                path.push_str(&format!("&iam_id={i}"));
            }
            let v = c.call(Method::GET, &path, None).await?;
            let list: Vec<Value> = rows(&v, "policies").iter().map(summarize).collect();
            table(
                json,
                &v,
                &list,
                &[
                    ("id", "ID"),
                    ("type", "TYPE"),
                    ("subject", "SUBJECT"),
                    ("roles", "ROLES"),
                    ("resource", "RESOURCE"),
                ],
            );
        }
        PolicyVerb::Delete { id } => {
            c.call(Method::DELETE, &format!("/v1/policies/{id}"), None)
                .await?;
            println!("deleted policy {id}");
        }
    }
    Ok(())
}

/// One line per policy: `name=value` pairs of its subject and resource.
fn summarize(p: &Value) -> Value {
    let pairs = |v: &Value| -> String {
        v["attributes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        format!(
                            "{}={}",
                            x["name"].as_str().unwrap_or(""),
                            x["value"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let roles: Vec<Value> = p["roles"]
        .as_array()
        .map(|r| r.iter().map(|x| x["display_name"].clone()).collect())
        .unwrap_or_default();
    json!({
        "id": p["id"], "type": p["type"], "roles": roles,
        "subject": pairs(&p["subjects"][0]), "resource": pairs(&p["resources"][0]),
    })
}
