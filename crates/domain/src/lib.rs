//! The messaging domain: typed ids, message vocabulary, the forward-only status ranking,
//! phone normalisation, job-event parsing and webhook signatures. Pure: no I/O, no async.

pub mod event;
pub mod fallback;
pub mod ids;
pub mod keywords;
pub mod message;
pub mod phone;
pub mod registration;
pub mod reply;
pub mod schedule;
pub mod search;
pub mod sender;
pub mod signing;
pub mod sms;
pub mod status;

pub use ids::{AccountId, CustomerId, EventId, IdError, JobId, MessageId, TechnicianId};
pub use message::{Channel, Direction, MessageType};
pub use phone::{E164, PhoneError};
pub use status::Status;
