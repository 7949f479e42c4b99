//! What both gateways share: the claim-before-send table (guarantee 3) and the `attempt` events
//! they publish to delivery-status.

mod batched;
pub mod claims;
mod group;

pub use claims::{Claim, Claims, OpenAttempt, Settlement};
