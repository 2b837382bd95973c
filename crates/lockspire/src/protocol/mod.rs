//! Protocol rules, one module per concern. Nothing here sees axum types: the web layer parses
//! HTTP into parameters, calls one function, and renders its typed outcome.

pub(crate) mod approval;
pub(crate) mod authorize;
pub(crate) mod ciba;
pub(crate) mod client;
pub(crate) mod client_auth;
pub(crate) mod client_keys;
pub(crate) mod device;
pub(crate) mod discovery;
pub(crate) mod dpop;
pub(crate) mod endpoints;
pub(crate) mod error;
pub(crate) mod id_token;
pub(crate) mod interaction;
pub(crate) mod introspect;
pub(crate) mod jti;
pub(crate) mod jwks_cache;
pub(crate) mod logout;
pub(crate) mod maintenance;
pub(crate) mod mtls_auth;
pub(crate) mod outbox;
pub(crate) mod par;
pub(crate) mod params;
pub(crate) mod pkce;
pub(crate) mod provider;
pub(crate) mod registration;
pub(crate) mod request_object;
pub(crate) mod revoke;
pub(crate) mod scope;
pub(crate) mod signing_keys;
pub(crate) mod token;
pub(crate) mod userinfo;
