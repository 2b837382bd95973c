//! The host's one `authorization_details` type (RFC 9396), so rich authorization requests can be
//! tried against the demo: `account_information`, reading the signed-in user's accounts.
//! Lockspire checks the common fields; the host decides what its own type may ask for and how
//! the consent page says it.

use lockspire::{AuthorizationDetail, AuthorizationDetailsType};
use serde_json::Value;

/// The actions this type knows, with the words the consent page uses for them.
const ACTIONS: [(&str, &str); 2] = [
    ("list_accounts", "see the list of your accounts"),
    ("read_balances", "read your account balances"),
];

/// `{"type": "account_information", "actions": [...]}`.
pub(crate) struct AccountInformation;

fn actions(detail: &AuthorizationDetail) -> Vec<&str> {
    detail
        .get("actions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

impl AuthorizationDetailsType for AccountInformation {
    fn validate(&self, detail: &AuthorizationDetail) -> Result<(), String> {
        let asked = actions(detail);
        if asked.is_empty() {
            return Err("account_information needs actions".into());
        }
        match asked
            .iter()
            .find(|a| !ACTIONS.iter().any(|(known, _)| known == *a))
        {
            Some(unknown) => Err(format!(
                "account_information has no action {unknown:?}; use list_accounts or read_balances"
            )),
            None => Ok(()),
        }
    }

    fn describe(&self, detail: &AuthorizationDetail) -> String {
        let words: Vec<&str> = ACTIONS
            .iter()
            .filter(|(action, _)| actions(detail).contains(action))
            .map(|(_, words)| *words)
            .collect();
        format!("Account information: {}", words.join(" and "))
    }

    /// An approval covers a later request for the same actions or fewer.
    fn covers(&self, approved: &AuthorizationDetail, requested: &AuthorizationDetail) -> bool {
        let had = actions(approved);
        actions(requested).iter().all(|a| had.contains(a))
    }
}
