//! The production guard: with `environment = "production"` a service refuses to start with a
//! secret left empty, at a known development default, or shorter than its minimum, or with a
//! development-only switch on, and the message names the key. Development accepts anything.

use serde::{Deserialize, Serialize};

/// Where the service runs; only production is guarded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Development,
    Production,
}

impl<'de> Deserialize<'de> for Environment {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let given = String::deserialize(deserializer)?;
        match given.trim().to_ascii_lowercase().as_str() {
            "development" => Ok(Self::Development),
            "production" => Ok(Self::Production),
            _ => Err(serde::de::Error::custom(format!(
                "environment must be \"development\" or \"production\", not {given:?}"
            ))),
        }
    }
}

/// One secret a service holds, by its configuration key.
#[derive(Debug, Clone, Copy)]
pub struct Secret<'a> {
    pub key: &'static str,
    pub value: &'a str,
    /// The fewest characters production accepts.
    pub min_chars: usize,
}

impl<'a> Secret<'a> {
    /// A secret this system signs or verifies with (HMAC keys, URL secrets): at least 32 characters.
    pub fn key(key: &'static str, value: &'a str) -> Self {
        Self { key, value, min_chars: 32 }
    }

    /// A credential another system issued (a password, a provider's token): at least 16 characters.
    pub fn credential(key: &'static str, value: &'a str) -> Self {
        Self { key, value, min_chars: 16 }
    }
}

/// How values shipped for development and examples begin (every development default starts `dev-`).
const DEFAULT_PREFIXES: &[&str] = &["dev-", "change-me", "changeme"];

/// Placeholder values as a whole.
const PLACEHOLDERS: &[&str] = &["secret", "password", "example", "test"];

fn is_known_default(value: &str) -> bool {
    let value = value.trim().to_ascii_lowercase();
    DEFAULT_PREFIXES.iter().any(|prefix| value.starts_with(prefix)) || PLACEHOLDERS.contains(&value.as_str())
}

/// Checks `secrets` and development-only `switches` (key, whether on) for `environment`.
pub fn check(
    environment: Environment,
    secrets: &[Secret<'_>],
    switches: &[(&'static str, bool)],
) -> Result<(), String> {
    if environment != Environment::Production {
        return Ok(());
    }
    for secret in secrets {
        let length = secret.value.chars().count();
        if secret.value.trim().is_empty() {
            return Err(format!("{} is required in production", secret.key));
        }
        if is_known_default(secret.value) {
            return Err(format!("{} is a development default; set a secret of your own in production", secret.key));
        }
        if length < secret.min_chars {
            return Err(format!(
                "{} is {length} characters; production needs at least {}",
                secret.key, secret.min_chars
            ));
        }
    }
    match switches.iter().find(|(_, on)| *on) {
        Some((key, _)) => Err(format!("{key} is for development only; turn it off in production")),
        None => Ok(()),
    }
}

/// The password in a `postgres://user:password@host/db` URL, if it has one.
pub fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split_once('@')?.0;
    userinfo.split_once(':').map(|(_, password)| password).filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRONG: &str = "b6f0c7a4e2d94f3a8c1e5b7d9a0f2c4e";

    #[test]
    fn development_accepts_anything() {
        let secrets = [Secret::key("callback_secret", "dev-callback-secret"), Secret::key("jwt_secret", "")];
        assert_eq!(check(Environment::Development, &secrets, &[("crash_at", true)]), Ok(()));
    }

    #[test]
    fn production_refuses_empty_default_and_short_secrets_naming_the_key() {
        let refused = |value: &str| check(Environment::Production, &[Secret::key("callback_secret", value)], &[]);
        assert_eq!(refused(""), Err("callback_secret is required in production".into()));
        for default in
            ["dev-callback-secret", "DEV-jwt-secret-change-me", "CHANGE-ME", "changeme-please-32-characters-x"]
        {
            let error = refused(default).expect_err(default);
            assert!(error.starts_with("callback_secret is a development default"), "{default}: {error}");
        }
        assert_eq!(
            refused("short-but-mine"),
            Err("callback_secret is 14 characters; production needs at least 32".into())
        );
        assert_eq!(refused(STRONG), Ok(()));
        let credential = [Secret::credential("twilio.auth_token", "0123456789abcdef")];
        assert_eq!(check(Environment::Production, &credential, &[]), Ok(()));
    }

    #[test]
    fn production_refuses_development_switches() {
        let secrets = [Secret::key("jwt_secret", STRONG)];
        let switches = [("crash_at", false), ("sendgrid_events_unsigned", true)];
        assert_eq!(
            check(Environment::Production, &secrets, &switches),
            Err("sendgrid_events_unsigned is for development only; turn it off in production".into())
        );
    }

    #[test]
    fn the_password_of_a_database_url() {
        assert_eq!(url_password("postgres://messaging:s3cret@db:5432/messaging"), Some("s3cret"));
        assert_eq!(url_password("postgres://postgres@127.0.0.1:5432/messaging"), None);
        assert_eq!(url_password("postgres://u:@h/db"), None);
    }
}
