//! TLS for the providers: rustls with the ring provider, Mozilla's roots (webpki-roots) plus any
//! extra roots the configuration names, and the HTTPS client every provider call goes through.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

/// Which servers a service trusts when it calls out.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    /// A PEM file of extra trusted roots (a private CA, a proxy's CA), trusted beside the built-in
    /// Mozilla roots; empty for none.
    pub ca_file: String,
}

impl TlsConfig {
    /// The extra roots, read and parsed; an unreadable file or one with no certificate is an error
    /// naming the key.
    pub fn extra_roots(&self) -> anyhow::Result<Vec<CertificateDer<'static>>> {
        if self.ca_file.is_empty() {
            return Ok(Vec::new());
        }
        let pem = std::fs::read(&self.ca_file)
            .map_err(|error| anyhow::anyhow!("tls.ca_file {:?} cannot be read: {error}", self.ca_file))?;
        let roots = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| anyhow::anyhow!("tls.ca_file {:?} is not PEM: {error}", self.ca_file))?;
        anyhow::ensure!(!roots.is_empty(), "tls.ca_file {:?} holds no certificate", self.ca_file);
        Ok(roots)
    }

    /// A rustls client configuration trusting the built-in roots and the extra ones.
    pub fn client_config(&self) -> anyhow::Result<rustls::ClientConfig> {
        let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        for root in self.extra_roots()? {
            roots.add(root).map_err(|error| anyhow::anyhow!("tls.ca_file {:?}: {error}", self.ca_file))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }

    /// A pooled HTTP client (keep-alive connections reused across calls) speaking HTTPS with
    /// [`Self::client_config`], and plain HTTP where the URL says so (the local simulator).
    pub fn http_client(&self, timeout: Duration) -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .tls_backend_preconfigured(self.client_config()?)
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(3).min(timeout))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?)
    }
}

/// The certificate fault somewhere in an error's cause chain (an untrusted, expired or misnamed
/// server certificate): a configuration problem an operator must fix, not a passing fault.
pub fn certificate_fault(error: &(dyn StdError + 'static)) -> Option<String> {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(current) = cause {
        let tls = current.downcast_ref::<rustls::Error>().or_else(|| {
            current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|inner| inner.downcast_ref())
        });
        if let Some(rustls::Error::InvalidCertificate(problem)) = tls {
            return Some(format!("the server's TLS certificate is not trusted: {problem:?}"));
        }
        // Some connectors re-wrap the handshake's error as text; rustls words it this way.
        if tls.is_none() && current.to_string().contains("invalid peer certificate") {
            return Some(format!("the server's TLS certificate is not trusted: {current}"));
        }
        cause = current.source();
    }
    None
}
