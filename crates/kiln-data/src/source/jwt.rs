//! Google service-account keys: the key file read and checked, and the OAuth 2.0 JWT bearer assertion signed with
//! RS256 (`ring`), to exchange at the key's `token_uri` for an access token.
//!
//! Key decision: no message about a key file ever holds any of its content; it names the file and what is wrong
//! (not JSON, no `private_key`, a key that does not parse). The parsed key is never printed (no `Debug` of it).

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Value, json};

use crate::fetch::FetchError;

/// Google's token endpoint, for a key without `token_uri`.
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The signed assertion lives this long (Google's maximum).
const LIFETIME_S: i64 = 3600;

/// A service account's identity and private key, from its JSON key file.
pub(crate) struct ServiceAccount {
    pub(crate) client_email: String,
    pub(crate) token_uri: String,
    path: PathBuf,
    key: RsaKeyPair,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ServiceAccount {
    /// Reads and checks the key file at `path`.
    ///
    /// # Errors
    /// [`FetchError::Credentials`] naming the file and what is wrong with it, never its content.
    pub(crate) fn from_file(path: &Path) -> Result<ServiceAccount, FetchError> {
        let bytes = std::fs::read(path).map_err(|e| {
            FetchError::Credentials(format!("BigQuery key file {}: cannot be read: {e}", path.display()))
        })?;
        ServiceAccount::from_json(path, &bytes)
    }

    pub(crate) fn from_json(path: &Path, bytes: &[u8]) -> Result<ServiceAccount, FetchError> {
        let bad = |what: &str| FetchError::Credentials(format!("BigQuery key file {}: {what}", path.display()));
        // serde_json's syntax errors say where, not what: nothing of the file is repeated
        let v: Value = serde_json::from_slice(bytes).map_err(|e| {
            bad(&format!(
                "not JSON (line {}, column {}); a service-account key is the JSON file the Google Cloud console downloads",
                e.line(),
                e.column()
            ))
        })?;
        if !v.is_object() {
            return Err(bad("not a JSON object; a service-account key is one"));
        }
        if let Some(kind) = v.get("type").and_then(Value::as_str)
            && kind != "service_account"
        {
            return Err(bad(&format!(
                "a credential of type {kind:?}, not a service-account key (type \"service_account\")"
            )));
        }
        let text = |field: &str| -> Result<String, FetchError> {
            match v.get(field) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(_) => Err(bad(&format!("`{field}` is not a non-empty string"))),
                None => Err(bad(&format!("no `{field}`; is it a service-account key?"))),
            }
        };
        let client_email = text("client_email")?;
        let pem = text("private_key")?;
        let token_uri = match v.get("token_uri") {
            None => GOOGLE_TOKEN_URI.to_string(),
            Some(_) => text("token_uri")?,
        };
        let key = parse_pem(&pem).map_err(|why| bad(&format!("`private_key` {why}")))?;
        Ok(ServiceAccount { client_email, token_uri, path: path.to_path_buf(), key })
    }

    /// The signed JWT asking for `scope`, issued at `iat` (unix seconds), expiring an hour later.
    pub(crate) fn assertion(&self, scope: &str, iat: i64) -> Result<String, FetchError> {
        let header = json!({"alg": "RS256", "typ": "JWT"});
        let claims = json!({
            "iss": self.client_email,
            "scope": scope,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + LIFETIME_S,
        });
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signing_input.as_bytes(), &mut signature).map_err(
            |_| {
                FetchError::Credentials(format!(
                    "BigQuery key file {}: signing with the key failed",
                    self.path.display()
                ))
            },
        )?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// An RSA private key from PEM: PKCS#8 (`BEGIN PRIVATE KEY`, what Google issues) or PKCS#1 (`BEGIN RSA PRIVATE
/// KEY`). The error says what is wrong, never what the text holds.
fn parse_pem(pem: &str) -> Result<RsaKeyPair, String> {
    let (label, body) =
        pem_body(pem).ok_or("is not a PEM private key (no -----BEGIN ...----- / -----END ...----- lines)")?;
    let der = STANDARD.decode(body).map_err(|_| "is not valid PEM (its base64 does not decode)".to_string())?;
    let parsed = match label.as_str() {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        other => return Err(format!("is a PEM {other}, not an RSA private key (BEGIN PRIVATE KEY)")),
    };
    parsed.map_err(|e| format!("is not a usable RSA private key ({e})"))
}

/// The label and the base64 body (whitespace removed) of the first PEM block.
fn pem_body(pem: &str) -> Option<(String, String)> {
    let begin = pem.find("-----BEGIN ")?;
    let rest = &pem[begin + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let rest = &rest[label_end + 5..];
    let end = rest.find(&format!("-----END {label}-----"))?;
    let body: String = rest[..end].chars().filter(|c| !c.is_whitespace()).collect();
    Some((label, body))
}
