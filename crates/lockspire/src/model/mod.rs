//! The vocabulary every floor shares: what a client registered. Plain data without storage or
//! protocol logic, so that the store and the protocol rules can both name it without naming
//! each other.

pub(crate) mod authorization_details;
pub(crate) mod client;
pub(crate) mod profile;
pub(crate) mod scope;
pub(crate) mod uri;
