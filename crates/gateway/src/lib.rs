//! What both gateways share: the claim-before-send table (guarantee 3) and the `attempt` events
//! they publish to delivery-status.

pub mod claims;

pub use claims::{Claim, Claims, OpenAttempt, Settlement};
