//! The demo relying party's DPoP side (RFC 9449): a key made for one flow, the proofs it signs,
//! a refresh that binds the new access token to the key, and the two calls to the host's API,
//! as bearer and as DPoP.

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A DPoP key pair (P-256), made for one flow and forgotten after it.
pub(crate) struct DpopKey {
    encoding: EncodingKey,
    jwk: jsonwebtoken::jwk::Jwk,
    /// Its RFC 7638 thumbprint: what a bound token's `cnf.jkt` names.
    pub(crate) thumbprint: String,
}

impl DpopKey {
    pub(crate) fn generate() -> anyhow::Result<Self> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|e| anyhow::anyhow!("making a DPoP key: {e}"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|e| anyhow::anyhow!("reading the DPoP key: {e}"))?;
        let point = pair.public_key().as_ref();
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(&point[1..33]),
            URL_SAFE_NO_PAD.encode(&point[33..65]),
        );
        // RFC 7638 §3.2: the required members, in lexicographic order, without whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let thumbprint =
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()));
        let jwk = serde_json::from_value(json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}))?;
        Ok(Self {
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
            thumbprint,
        })
    }

    /// A proof for `method` at `url` (RFC 9449 §4.2), naming `access_token` at a resource.
    pub(crate) fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
    ) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".to_owned());
        header.jwk = Some(self.jwk.clone());
        let mut claims = json!({
            "jti": crate::random::token::<16>()?,
            "htm": method,
            "htu": url,
            "iat": time::OffsetDateTime::now_utc().unix_timestamp(),
        });
        if let Some(token) = access_token {
            claims["ath"] =
                json!(URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes())));
        }
        Ok(jsonwebtoken::encode(&header, &claims, &self.encoding)?)
    }
}

/// An HTTP exchange as the result page shows it.
pub(crate) struct Exchange {
    pub(crate) status: u16,
    pub(crate) body: Value,
    /// The `WWW-Authenticate` challenge of a refusal; empty otherwise.
    pub(crate) challenge: String,
}

/// Reads an answer: its status and its JSON body (or its text, when it is not JSON).
async fn exchange(response: reqwest::Response) -> Result<Exchange, reqwest::Error> {
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Exchange {
        status,
        body,
        challenge: challenge.unwrap_or_default(),
    })
}

/// Refreshes with a proof (RFC 9449 §5): the new access token is bound to `key`.
pub(crate) async fn refresh_bound(
    http: &reqwest::Client,
    token_endpoint: &str,
    client_id: &str,
    refresh_token: &str,
    key: &DpopKey,
    client_authentication: &[(String, String)],
) -> anyhow::Result<Exchange> {
    let proof = key.proof("POST", token_endpoint, None)?;
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", client_id),
    ];
    form.extend(
        client_authentication
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let response = http
        .post(token_endpoint)
        .header("DPoP", proof)
        .form(&form)
        .send()
        .await?;
    Ok(exchange(response).await?)
}

/// Calls `url` with `token`: as a bearer token, or with the DPoP scheme and a proof by `key`.
pub(crate) async fn call_api(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    key: Option<&DpopKey>,
) -> anyhow::Result<Exchange> {
    let request = match key {
        None => http.get(url).bearer_auth(token),
        Some(key) => http
            .get(url)
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", key.proof("GET", url, Some(token))?),
    };
    Ok(exchange(request.send().await?).await?)
}

/// One answer as the result page shows it.
pub(crate) struct Shown {
    pub(crate) status: u16,
    /// The body, pretty-printed.
    pub(crate) body: String,
    /// The `WWW-Authenticate` header of a refusal; empty otherwise.
    pub(crate) challenge: String,
}

/// Steps 7 and 8 of the result page, each as it went over the wire.
pub(crate) struct ApiSteps {
    /// The API's resource identifier (RFC 8707).
    pub(crate) resource: String,
    pub(crate) url: String,
    /// The API's answer to the bearer token.
    pub(crate) bearer: Shown,
    /// The refresh with a proof, its tokens shortened.
    pub(crate) refresh: Shown,
    /// The thumbprint of the key the new token is bound to.
    pub(crate) jkt: String,
    /// The API's answer to the bound token and a proof.
    pub(crate) dpop: Shown,
    /// The API's answer to the bound token without a proof.
    pub(crate) dpop_as_bearer: Shown,
}

/// The demo client as it refreshes: its id, its authentication (an assertion under FAPI 2.0,
/// nothing for the public client) and, under FAPI 2.0, the flow's DPoP key.
pub(crate) struct Refresher<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) authentication: Vec<(String, String)>,
    pub(crate) key: Option<DpopKey>,
}

/// Calls the host's API with the flow's access token as a bearer token, then refreshes with a
/// proof to get a DPoP-bound token and calls the API with it and a proof of the key. Under FAPI
/// 2.0 the first token is DPoP-bound already, so the bearer call shows its refusal, and the
/// refresh carries the client's assertion and the flow's key.
pub(crate) async fn api_steps(
    http: &reqwest::Client,
    issuer: &str,
    token_endpoint: &str,
    access_token: &str,
    refresh_token: &str,
    client: Refresher<'_>,
) -> anyhow::Result<ApiSteps> {
    let resource = format!("{issuer}{}", crate::api::API_PATH);
    let url = format!("{resource}/me");
    let bearer = call_api(http, &url, access_token, None).await?;
    // Under FAPI 2.0 the flow's key, which the first token is bound to already; else a key made
    // now, which the refresh binds the new token to.
    let key = match client.key {
        Some(key) => key,
        None => DpopKey::generate()?,
    };
    let refreshed = refresh_bound(
        http,
        token_endpoint,
        client.client_id,
        refresh_token,
        &key,
        &client.authentication,
    )
    .await?;
    let bound = refreshed
        .body
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the refresh with a proof failed: HTTP {} {}",
                refreshed.status,
                refreshed.body
            )
        })?
        .to_owned();
    let dpop = call_api(http, &url, &bound, Some(&key)).await?;
    let dpop_as_bearer = call_api(http, &url, &bound, None).await?;
    let show = |e: &Exchange| Shown {
        status: e.status,
        body: crate::display::pretty(&e.body),
        challenge: e.challenge.clone(),
    };
    Ok(ApiSteps {
        resource,
        url,
        bearer: show(&bearer),
        refresh: Shown {
            status: refreshed.status,
            body: crate::display::redacted_tokens(refreshed.body),
            challenge: refreshed.challenge,
        },
        jkt: key.thumbprint,
        dpop: show(&dpop),
        dpop_as_bearer: show(&dpop_as_bearer),
    })
}
