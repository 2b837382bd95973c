//! Rich authorization requests (RFC 9396): `authorization_details`, a JSON array of objects that
//! each name a `type` and say, in that type's fields, what the client wants to do.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One authorization details object (RFC 9396 §2): its `type` and the fields that type defines,
/// the common ones (§2.2: `locations`, `actions`, `datatypes`, `identifier`, `privileges`)
/// already checked to have their defined JSON types.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Value>", into = "Map<String, Value>")]
pub struct AuthorizationDetail(Map<String, Value>);

impl AuthorizationDetail {
    /// The `type` (RFC 9396 §2): what kind of authorization the object asks for.
    pub fn kind(&self) -> &str {
        self.0
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// A field of the object.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.0.get(field)
    }

    /// The whole object, `type` included.
    pub fn as_json(&self) -> &Map<String, Value> {
        &self.0
    }
}

impl TryFrom<Map<String, Value>> for AuthorizationDetail {
    type Error = String;

    fn try_from(object: Map<String, Value>) -> Result<Self, String> {
        match object.get("type") {
            Some(Value::String(t)) if !t.is_empty() => {}
            _ => return Err("every authorization details object needs a string type".into()),
        }
        for field in ["locations", "actions", "datatypes", "privileges"] {
            if let Some(value) = object.get(field) {
                let strings = value
                    .as_array()
                    .is_some_and(|items| items.iter().all(Value::is_string));
                if !strings {
                    return Err(format!("{field} must be an array of strings"));
                }
            }
        }
        if object.get("identifier").is_some_and(|v| !v.is_string()) {
            return Err("identifier must be a string".into());
        }
        Ok(Self(object))
    }
}

impl From<AuthorizationDetail> for Map<String, Value> {
    fn from(detail: AuthorizationDetail) -> Self {
        detail.0
    }
}

/// The `authorization_details` of a request, grant or token: empty when none were asked for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuthorizationDetails(Vec<AuthorizationDetail>);

impl AuthorizationDetails {
    /// Parses the parameter's value: a JSON array of objects (RFC 9396 §2). The error says what
    /// is wrong, for `error_description`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text)
            .map_err(|_| "authorization_details must be a JSON array".to_owned())?;
        let Value::Array(items) = value else {
            return Err("authorization_details must be a JSON array".into());
        };
        if items.is_empty() {
            return Err("authorization_details must not be empty".into());
        }
        items
            .into_iter()
            .map(|item| match item {
                Value::Object(object) => AuthorizationDetail::try_from(object),
                _ => Err("each authorization details entry must be a JSON object".into()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Reads the stored form; anything unreadable reads as none, never as more.
    pub(crate) fn from_stored(text: Option<&str>) -> Self {
        text.and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    }

    /// The stored form: `None` when empty.
    pub(crate) fn to_stored(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.to_json().to_string())
    }

    /// The JSON array, as token responses and introspection carry it (RFC 9396 §7, §9.2).
    pub fn to_json(&self) -> Value {
        Value::Array(self.0.iter().map(|d| Value::Object(d.0.clone())).collect())
    }

    /// The JSON array as a response member or claim, which is left out when empty.
    pub(crate) fn to_member(&self) -> Option<Value> {
        (!self.is_empty()).then(|| self.to_json())
    }

    /// True when no details were asked for.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each object.
    pub fn iter(&self) -> impl Iterator<Item = &AuthorizationDetail> {
        self.0.iter()
    }

    /// Adds what the user just approved, skipping objects already held.
    pub(crate) fn extend(&mut self, more: &AuthorizationDetails) {
        for detail in more.iter() {
            if !self.0.contains(detail) {
                self.0.push(detail.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9396_shapes() {
        let ok = AuthorizationDetails::parse(
            r#"[{"type":"payment_initiation","actions":["initiate"],"locations":["https://pay.example"],"identifier":"x","instructedAmount":{"currency":"EUR","amount":"123.50"}}]"#,
        );
        assert_eq!(
            ok.map(|d| d.iter().map(|d| d.kind().to_owned()).collect::<Vec<_>>()),
            Ok(vec!["payment_initiation".to_owned()])
        );
        for bad in [
            "{}",
            "[]",
            "[1]",
            r#"[{"actions":["read"]}]"#,
            r#"[{"type":""}]"#,
            r#"[{"type":7}]"#,
            r#"[{"type":"t","actions":"read"}]"#,
            r#"[{"type":"t","locations":[1]}]"#,
            r#"[{"type":"t","identifier":["x"]}]"#,
            "not json",
        ] {
            assert!(AuthorizationDetails::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stored_form_round_trips_and_empty_is_null() {
        let d =
            AuthorizationDetails::parse(r#"[{"type":"t","actions":["a"]}]"#).unwrap_or_default();
        assert_eq!(
            AuthorizationDetails::from_stored(d.to_stored().as_deref()),
            d
        );
        assert_eq!(AuthorizationDetails::default().to_stored(), None);
    }
}
