//! What a backchannel request keeps beyond its columns, in the row's `request` JSON: read by
//! the endpoint and the decision, and by the token endpoint, which must know the request's mode.

use serde::{Deserialize, Serialize};

use crate::model::client::DeliveryMode;

/// The request as it was asked: its mode and notification endpoint are the client's at that
/// moment, so a client that changes its registration meanwhile cannot change how this request
/// is answered.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub(crate) mode: DeliveryMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) binding_message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) acr_values: Vec<String>,
    /// For the ping and push modes until the request is decided: what the notification sends
    /// back (the `auth_req_id` and the client's notification token), sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) notify: Option<String>,
}

impl Stored {
    /// The stored request, or `None` for a row that is not one.
    pub(crate) fn read(request: &str) -> Option<Self> {
        serde_json::from_str(request).ok()
    }
}
