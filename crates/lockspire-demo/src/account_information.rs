//! The host's one `authorization_details` type (RFC 9396), so rich authorization requests can be
//! tried against the demo: `account_information`, reading the signed-in user's accounts.
//! Lockspire checks the common fields; the host decides what its own type may ask for and how
//! the consent page says it. The rule this file keeps: the consent line names everything an
//! object grants, so an object carrying anything the line would not name is refused.

use lockspire::{AuthorizationDetail, AuthorizationDetailsType};
use serde_json::Value;

/// The actions this type knows, with the words the consent page uses for them.
const ACTIONS: [(&str, &str); 2] = [
    ("list_accounts", "see the list of your accounts"),
    ("read_balances", "read your account balances"),
];

/// `{"type": "account_information", "actions": [...]}`, nothing else.
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
        // Any other field (an identifier, locations, privileges) would be granted without the
        // consent line saying so.
        if let Some(other) = detail
            .as_json()
            .keys()
            .find(|k| !matches!(k.as_str(), "type" | "actions"))
        {
            return Err(format!(
                "account_information takes only actions, not {other}"
            ));
        }
        let asked = actions(detail);
        if asked.is_empty() {
            return Err("account_information needs at least one action".into());
        }
        match asked
            .iter()
            .find(|a| !ACTIONS.iter().any(|(known, _)| known == *a))
        {
            Some(unknown) => Err(format!(
                "account_information has no action {unknown}; use list_accounts or read_balances"
            )),
            None => Ok(()),
        }
    }

    fn describe(&self, detail: &AuthorizationDetail) -> String {
        let asked = actions(detail);
        let words: Vec<&str> = ACTIONS
            .iter()
            .filter(|(action, _)| asked.contains(action))
            .map(|(_, words)| *words)
            .collect();
        format!("Account information: {}", words.join(" and "))
    }

    /// An approval covers a later request for the same actions or fewer; `validate` has made
    /// sure there is nothing else to compare.
    fn covers(&self, approved: &AuthorizationDetail, requested: &AuthorizationDetail) -> bool {
        let had = actions(approved);
        actions(requested).iter().all(|a| had.contains(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockspire::AuthorizationDetails;

    fn one(json: &str) -> AuthorizationDetail {
        let parsed = AuthorizationDetails::parse(json).map_err(|e| e.to_string());
        match parsed.as_ref().map(|d| d.iter().next().cloned()) {
            Ok(Some(d)) => d,
            other => panic!("{json}: {other:?}"),
        }
    }

    #[test]
    fn only_what_the_consent_line_names_is_accepted() {
        let t = AccountInformation;
        assert!(
            t.validate(&one(
                r#"[{"type":"account_information","actions":["read_balances"]}]"#
            ))
            .is_ok()
        );
        for bad in [
            r#"[{"type":"account_information","actions":[]}]"#,
            r#"[{"type":"account_information","actions":["transfer"]}]"#,
            r#"[{"type":"account_information","actions":["read_balances"],"identifier":"someone-elses"}]"#,
            r#"[{"type":"account_information","actions":["read_balances"],"locations":["https://evil.example"]}]"#,
            r#"[{"type":"account_information","actions":["read_balances"],"privileges":["admin"]}]"#,
        ] {
            assert!(t.validate(&one(bad)).is_err(), "{bad}");
        }
        let both =
            one(r#"[{"type":"account_information","actions":["list_accounts","read_balances"]}]"#);
        assert_eq!(
            t.describe(&both),
            "Account information: see the list of your accounts and read your account balances"
        );
        let list = one(r#"[{"type":"account_information","actions":["list_accounts"]}]"#);
        assert!(t.covers(&both, &list));
        assert!(!t.covers(&list, &both));
    }
}
