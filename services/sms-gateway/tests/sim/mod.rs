//! The Twilio simulator run in-process for the adapter's tests: started on a free port, over plain
//! HTTP, or over HTTPS with a certificate from a test CA.

#![allow(dead_code)]

use messaging_integration_tests::tls::TestCa;
use messaging_provider_sim::{Faults, SimConfig};

pub const SID: &str = "AC00000000000000000000000000000000";
pub const TOKEN: &str = "secret-token";

/// Starts the simulator with `faults`, serving HTTPS when given a CA; returns its base URL.
pub async fn start(faults: Faults, tls: Option<&TestCa>) -> String {
    let file = |path: Option<&std::path::PathBuf>| path.map(|p| p.display().to_string()).unwrap_or_default();
    let simulator = messaging_provider_sim::build(SimConfig {
        listen: "127.0.0.1:0".into(),
        account_sid: SID.into(),
        auth_token: TOKEN.into(),
        inbound_url: String::new(),
        faults,
        tls_cert_file: file(tls.map(|ca| &ca.cert_file)),
        tls_key_file: file(tls.map(|ca| &ca.key_file)),
    })
    .await
    .expect("binds");
    let port = simulator.local_addr().expect("address").port();
    tokio::spawn(simulator.run(tokio_util::sync::CancellationToken::new()));
    // The test CA's certificate names localhost.
    if tls.is_some() { format!("https://localhost:{port}") } else { format!("http://127.0.0.1:{port}") }
}
