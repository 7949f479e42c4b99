//! Bearer-token authentication: a JWT (HS256 with the configured secret) whose `account_id` claim
//! scopes every call. The interceptor puts the verified [`AccountId`] into request extensions.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use messaging_domain::AccountId;
use serde::Deserialize;
use tonic::{Request, Status};

#[derive(Deserialize)]
struct Claims {
    account_id: String,
}

/// Verifies tokens.
#[derive(Clone)]
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

impl Authenticator {
    pub fn hs256(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        validation.leeway = 5;
        Self { key: DecodingKey::from_secret(secret.as_bytes()), validation }
    }

    /// The account a request's bearer token grants, or UNAUTHENTICATED.
    pub fn account(&self, metadata: &tonic::metadata::MetadataMap) -> Result<AccountId, Status> {
        let header = metadata
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing authorization: Bearer <token>"))?
            .to_str()
            .map_err(|_| Status::unauthenticated("malformed authorization header"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization must be a Bearer token"))?;
        let data = jsonwebtoken::decode::<Claims>(token.trim(), &self.key, &self.validation)
            .map_err(|_| Status::unauthenticated("invalid or expired token"))?;
        AccountId::parse(data.claims.account_id).map_err(|_| Status::unauthenticated("token has an invalid account_id"))
    }

    /// A tonic interceptor storing the verified account in the request's extensions.
    pub fn intercept(&self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let account = self.account(request.metadata())?;
        request.extensions_mut().insert(account);
        Ok(request)
    }
}

/// The verified account of a request that passed the interceptor.
pub fn account_of<T>(request: &Request<T>) -> Result<AccountId, Status> {
    request.extensions().get::<AccountId>().cloned().ok_or_else(|| Status::unauthenticated("unauthenticated"))
}
