//! Bearer-token authentication: a JWT whose `account_id` claim scopes every call, HS256 with the
//! configured secret or, when a public key is configured, RS256. The algorithm must be one of
//! those (never `none`), `exp` is required and checked. The interceptor puts the verified
//! [`AccountId`], the token's [`Role`] and, for a technician, their [`Technician`] id into request
//! extensions: a technician token must name its `technician_id`.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use messaging_domain::{AccountId, TechnicianId};
use serde::Deserialize;
use tonic::{Request, Status};

#[derive(Deserialize)]
struct Claims {
    account_id: String,
    /// `owner`, `office` or `technician`; absent on tokens that only read the feed.
    #[serde(default)]
    role: Option<String>,
    /// The technician a `technician` token is for: what scopes what they see.
    #[serde(default)]
    technician_id: Option<String>,
}

/// The technician a request's token is for (in the request's extensions for technician tokens only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Technician(pub TechnicianId);

/// What the token's holder is to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Owner,
    Office,
    Technician,
    /// The token names no role (or one this service does not know): it reads the feed and sends.
    Unstated,
}

impl Role {
    fn parse(claim: Option<&str>) -> Self {
        match claim {
            Some("owner") => Role::Owner,
            Some("office") => Role::Office,
            Some("technician") => Role::Technician,
            _ => Role::Unstated,
        }
    }

    /// Whether the holder may change how the account's messages are worded.
    pub fn manages_account(self) -> bool {
        matches!(self, Role::Owner | Role::Office)
    }
}

/// Verifies tokens.
#[derive(Clone)]
pub struct Authenticator {
    hs256: DecodingKey,
    rs256: Option<DecodingKey>,
}

fn validation(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_required_spec_claims(&["exp"]);
    validation.leeway = 5;
    validation
}

impl Authenticator {
    pub fn hs256(secret: &str) -> Self {
        Self { hs256: DecodingKey::from_secret(secret.as_bytes()), rs256: None }
    }

    /// Also accepts RS256 tokens signed by the holder of this public key (PEM).
    pub fn with_rs256(mut self, public_key_pem: &[u8]) -> anyhow::Result<Self> {
        self.rs256 = Some(DecodingKey::from_rsa_pem(public_key_pem)?);
        Ok(self)
    }

    /// The account a request's bearer token grants, or UNAUTHENTICATED.
    pub fn account(&self, metadata: &tonic::metadata::MetadataMap) -> Result<AccountId, Status> {
        self.caller(metadata).map(|(account, _)| account)
    }

    /// The account a request's bearer token grants and the role it names, or UNAUTHENTICATED.
    pub fn caller(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(AccountId, Role), Status> {
        self.claims(metadata).map(|(account, role, _)| (account, role))
    }

    /// The account, the role and, for a technician, who: or UNAUTHENTICATED.
    fn claims(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(AccountId, Role, Option<Technician>), Status> {
        let header = metadata
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing authorization: Bearer <token>"))?
            .to_str()
            .map_err(|_| Status::unauthenticated("malformed authorization header"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization must be a Bearer token"))?
            .trim();
        let invalid = || Status::unauthenticated("invalid or expired token");
        let algorithm = jsonwebtoken::decode_header(token).map_err(|_| invalid())?.alg;
        let key = match (algorithm, &self.rs256) {
            (Algorithm::HS256, _) => &self.hs256,
            (Algorithm::RS256, Some(key)) => key,
            _ => return Err(Status::unauthenticated("token algorithm not accepted")),
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation(algorithm)).map_err(|_| invalid())?;
        let role = Role::parse(data.claims.role.as_deref());
        let account = AccountId::parse(data.claims.account_id)
            .map_err(|_| Status::unauthenticated("token has an invalid account_id"))?;
        let technician = match (role, data.claims.technician_id) {
            (Role::Technician, Some(id)) => Some(Technician(
                TechnicianId::parse(id).map_err(|_| Status::unauthenticated("token has an invalid technician_id"))?,
            )),
            (Role::Technician, None) => {
                return Err(Status::unauthenticated("a technician token must carry technician_id"));
            }
            _ => None,
        };
        Ok((account, role, technician))
    }

    /// A tonic interceptor storing the verified account in the request's extensions.
    pub fn intercept(&self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let (account, role, technician) = self.claims(request.metadata())?;
        request.extensions_mut().insert(account);
        request.extensions_mut().insert(role);
        if let Some(technician) = technician {
            request.extensions_mut().insert(technician);
        }
        Ok(request)
    }
}

/// The verified account of a request that passed the interceptor.
pub fn account_of<T>(request: &Request<T>) -> Result<AccountId, Status> {
    request.extensions().get::<AccountId>().cloned().ok_or_else(|| Status::unauthenticated("unauthenticated"))
}

/// The role of a request that passed the interceptor.
pub fn role_of<T>(request: &Request<T>) -> Role {
    request.extensions().get::<Role>().copied().unwrap_or(Role::Unstated)
}

/// The technician of a request that passed the interceptor with a technician token.
pub fn technician_of<T>(request: &Request<T>) -> Option<TechnicianId> {
    request.extensions().get::<Technician>().map(|t| t.0.clone())
}
