//! How the AWS SDK clients (DynamoDB, Secrets Manager) are set up, chosen for cold start.
//!
//! - **Credentials and region from the environment**, where Lambda puts them
//!   (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`), and
//!   where `scripts/dev` and `sam local` put them too. Not the SDK's default chain (profiles,
//!   SSO, web identity through STS, ECS, EC2 instance metadata): a Lambda function never
//!   reaches past its first link, yet building the chain costs init time and linking it
//!   costs binary size (STS's client, XML, profile parsing).
//! - **An HTTP client that trusts the roots AWS endpoints chain to.** The SDK's default client
//!   reads every certificate the OS has (`/etc/ssl/certs`, the bundle) and parses them when
//!   its first connection is set up: CPU at init, for the whole bundle, when AWS endpoints
//!   use none of it but a few roots. AWS service endpoints all chain to Amazon Trust
//!   Services, so this client trusts exactly those roots ([`AWS_ROOTS`]), compiled in: no
//!   file is read and five certificates are parsed. Only a custom `https://` endpoint (not
//!   AWS, not the local `http://` one) gets the OS roots, since its CA is anyone's. The cold
//!   start with this client is measured in BENCHMARKS.md ("Latest run").

use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::meta::region::ProvideRegion;
use aws_config::Region;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// Amazon Root CA 1 to 4 and Starfield Services Root CA G2 (PEM, with their fingerprints).
pub const AWS_ROOTS: &[u8] = include_bytes!("aws-roots.pem");

/// The region from `AWS_REGION` (or `AWS_DEFAULT_REGION`); `us-east-1` without one.
pub async fn region() -> Region {
    EnvironmentVariableRegionProvider::new()
        .region()
        .await
        .unwrap_or_else(|| Region::new("us-east-1"))
}

/// The credentials in `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
pub fn credentials() -> EnvironmentVariableCredentialsProvider {
    EnvironmentVariableCredentialsProvider::new()
}

/// The client every SDK client of a function uses. `endpoint` is the custom endpoint, if any.
pub fn http_client(endpoint: Option<&str>) -> SharedHttpClient {
    let custom_tls =
        endpoint.is_some_and(|e| e.trim().to_ascii_lowercase().starts_with("https://"));
    let trust = if custom_tls {
        TrustStore::default()
    } else {
        TrustStore::empty().with_pem_certificate(AWS_ROOTS)
    };
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a TLS context from a trust store");
    // As the SDK's default client does (aws-smithy-runtime `default_https_client`), but with
    // our trust store.
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut connector = ConnectorBuilder::default()
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context.clone());
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    #[test]
    fn the_aws_roots_parse_as_five_trust_anchors() {
        let certs: Vec<_> = CertificateDer::pem_slice_iter(AWS_ROOTS)
            .collect::<Result<_, _>>()
            .expect("valid PEM certificates");
        assert_eq!(certs.len(), 5);
        let mut store = rustls::RootCertStore::empty();
        let (valid, invalid) = store.add_parsable_certificates(certs);
        assert_eq!((valid, invalid), (5, 0));
    }
}
