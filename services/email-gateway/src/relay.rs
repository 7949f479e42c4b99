//! The SMTP relay client: pooled lettre connections (implicit TLS, STARTTLS or plain, with auth)
//! and a send in stages, so a failure is classified by how far the message got. Anything before
//! the message's final dot is safe to retry; a 4xx or 5xx reply to it is the relay's verdict; no
//! reply at all (a timeout, a dropped connection) means the relay may have the message, and it is
//! never sent again (guarantee 3).

use std::sync::Mutex;
use std::time::Duration;

use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, CertificateStore, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use messaging_platform::tls::{TlsConfig, certificate_fault};

use crate::smtp::{Email, MailError, Mailer, SmtpConfig, build};

/// A pool of SMTP sessions to one relay.
pub struct Smtp {
    config: SmtpConfig,
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    domain: String,
    idle: Mutex<Vec<AsyncSmtpConnection>>,
}

impl Smtp {
    pub fn new(config: &SmtpConfig, tls: &TlsConfig, message_id_domain: &str) -> anyhow::Result<Self> {
        let parameters = match config.tls.as_str() {
            "none" => None,
            "tls" | "starttls" => {
                let mut builder =
                    TlsParameters::builder(config.host.clone()).certificate_store(CertificateStore::WebpkiRoots);
                for root in tls.extra_roots()? {
                    builder = builder.add_root_certificate(Certificate::from_der(root.to_vec())?);
                }
                Some(builder.build_rustls()?)
            }
            other => anyhow::bail!("smtp.tls must be none, starttls or tls, not {other:?}"),
        };
        Ok(Self {
            config: config.clone(),
            tls: parameters,
            credentials: (!config.username.is_empty())
                .then(|| Credentials::new(config.username.clone(), config.password.clone())),
            hello: ClientId::default(),
            domain: message_id_domain.to_owned(),
            idle: Mutex::new(Vec::new()),
        })
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeout_ms)
    }

    /// An idle session that still answers, or a new one (connected, encrypted, authenticated).
    async fn session(&self) -> Result<AsyncSmtpConnection, MailError> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
            let Some(mut session) = idle else { break };
            if session.test_connected().await {
                return Ok(session);
            }
        }
        let implicit = if self.config.tls == "tls" { self.tls.clone() } else { None };
        let address = (self.config.host.as_str(), self.config.port);
        let mut session =
            AsyncSmtpConnection::connect_tokio1(address, Some(self.timeout()), &self.hello, implicit, None)
                .await
                .map_err(|error| before_sending("connecting", &error))?;
        if self.config.tls == "starttls" {
            let tls = self.tls.clone().ok_or_else(|| MailError::Misconfigured("no TLS parameters".into()))?;
            if !session.can_starttls() {
                return Err(MailError::Misconfigured("the relay does not offer STARTTLS".into()));
            }
            session.starttls(tls, &self.hello).await.map_err(|error| before_sending("STARTTLS", &error))?;
        }
        if let Some(credentials) = &self.credentials {
            session.auth(&[Mechanism::Plain, Mechanism::Login], credentials).await.map_err(|error| {
                match error.is_permanent() {
                    true => MailError::Misconfigured(format!("the relay refused our credentials: {error}")),
                    false => before_sending("authenticating", &error),
                }
            })?;
        }
        Ok(session)
    }

    fn give_back(&self, session: AsyncSmtpConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < self.config.pool_size && !session.has_broken() {
            idle.push(session);
        }
    }
}

impl Mailer for Smtp {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let message = build(email, &self.domain)?;
        let envelope = message.envelope().clone();
        let bytes = message.formatted();
        let mut session = self.session().await?;
        let parameters = mail_parameters(&session, &envelope, &bytes)?;
        let staged = async {
            session.command(Mail::new(envelope.from().cloned(), parameters)).await.map_err(before_dot)?;
            for recipient in envelope.to() {
                session.command(Rcpt::new(recipient.clone(), vec![])).await.map_err(before_dot)?;
            }
            session.command(Data).await.map_err(before_dot)?;
            session.message(&bytes).await.map_err(|error| at_dot(&error))
        };
        match staged.await {
            Ok(_) => {
                self.give_back(session);
                Ok(())
            }
            Err(error) => {
                session.abort().await;
                Err(error)
            }
        }
    }
}

/// The MAIL FROM parameters lettre itself would send (8BITMIME, SMTPUTF8), refusing what the
/// relay cannot take.
fn mail_parameters(
    session: &AsyncSmtpConnection,
    envelope: &Envelope,
    bytes: &[u8],
) -> Result<Vec<MailParameter>, MailError> {
    let mut parameters = Vec::new();
    let non_ascii = |address: &Address| !AsRef::<str>::as_ref(address).is_ascii();
    if envelope.from().is_some_and(non_ascii) || envelope.to().iter().any(non_ascii) {
        if !session.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(MailError::Invalid("a non-ASCII address, and the relay lacks SMTPUTF8".into()));
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !bytes.is_ascii() {
        if !session.server_info().supports_feature(Extension::EightBitMime) {
            return Err(MailError::Invalid("8-bit content, and the relay lacks 8BITMIME".into()));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    Ok(parameters)
}

/// A failure before the relay saw the whole message: nothing was accepted, so a retry is safe.
fn before_sending(stage: &str, error: &lettre::transport::smtp::Error) -> MailError {
    match certificate_fault(error) {
        Some(fault) => MailError::Misconfigured(format!("smtp {stage}: {fault}")),
        None if error.is_permanent() => MailError::Permanent(error.to_string()),
        None => MailError::Transient(format!("{stage}: {error}")),
    }
}

fn before_dot(error: lettre::transport::smtp::Error) -> MailError {
    before_sending("sending the envelope", &error)
}

/// A failure once the whole message was sent: only a reply says what the relay did with it.
fn at_dot(error: &lettre::transport::smtp::Error) -> MailError {
    if error.is_permanent() {
        MailError::Permanent(error.to_string())
    } else if error.is_transient() {
        MailError::Transient(error.to_string())
    } else {
        MailError::Ambiguous(format!("no verdict after the message was sent: {error}"))
    }
}
