//! JSON endpoints: discovery, JWKS, token, userinfo, introspection, revocation, registration.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, Request, StatusCode, header};
use serde::Serialize;
use serde_json::Value;

use super::request::{authorization, form, read_body};
use crate::config::RegistrationPolicy;
use crate::mtls::ClientCertificate;
use crate::protocol::endpoints::Endpoint;
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::provider::Provider;
use crate::protocol::{
    introspect as introspection, registration, revoke as revocation, token as token_endpoint,
    userinfo as ui,
};

fn json_body(body: &str, cache: &'static str) -> Response {
    let mut r = body.to_owned().into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

/// RFC 6749 §5.1: responses carrying tokens or token metadata must not be cached.
pub(super) fn no_store(status: StatusCode, value: &impl Serialize) -> Response {
    let mut r = (status, Json(value)).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// The request's client certificate (RFC 8705), when mutual TLS is configured.
pub(super) fn client_certificate(
    p: &Provider,
    parts: &http::request::Parts,
) -> Option<ClientCertificate> {
    p.mtls
        .as_ref()
        .and_then(|m| m.certificate(&parts.headers, &parts.extensions))
}

/// RFC 9701 §4 media type.
const INTROSPECTION_JWT: &str = "application/token-introspection+jwt";

fn no_store_jwt(jwt: String, media_type: &'static str) -> Response {
    let mut r = jwt.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`.
pub(crate) async fn discovery(State(p): State<Arc<Provider>>) -> Response {
    json_body(&p.discovery, "public, max-age=300")
}

/// `GET /jwks` (RFC 7517 §5): public keys only, pre-serialized.
pub(crate) async fn jwks(State(p): State<Arc<Provider>>) -> Response {
    let mut r = json_body(p.keys().jwks_json(), "public, max-age=300");
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    r
}

/// RFC 9449 §8.2: every answer to a request that carried a proof, success or error, carries
/// the current nonce, so a client has a fresh one before the server insists on it.
fn with_dpop_nonce(
    p: &Provider,
    proof_sent: bool,
    answer: Result<Response, OAuthError>,
) -> Response {
    let mut response = answer.into_response();
    if proof_sent && let Ok(nonce) = HeaderValue::from_str(&p.dpop_nonces.current(p.now())) {
        response.headers_mut().insert("dpop-nonce", nonce);
    }
    response
}

/// `POST /token` (RFC 6749 §3.2).
pub(crate) async fn token(State(p): State<Arc<Provider>>, req: Request<Body>) -> Response {
    let proof_sent = req.headers().contains_key("dpop");
    let answer = async {
        let (parts, params) = form(req, Endpoint::Token).await?;
        let authz = authorization(&parts.headers)?;
        let dpop = super::request::dpop_proof(&parts.headers)?;
        let response =
            token_endpoint::exchange(&p, authz, client_certificate(&p, &parts), dpop, &params)
                .await?;
        Ok(no_store(StatusCode::OK, &response))
    }
    .await;
    with_dpop_nonce(&p, proof_sent, answer)
}

/// `POST /par` (RFC 9126 §2): `201 Created` with the `request_uri`, errors as JSON.
pub(crate) async fn pushed_authorization(
    State(p): State<Arc<Provider>>,
    req: Request<Body>,
) -> Response {
    let proof_sent = req.headers().contains_key("dpop");
    let answer = async {
        let (parts, params) = form(req, Endpoint::PushedAuthorization).await?;
        let authz = authorization(&parts.headers)?;
        let dpop = super::request::dpop_proof(&parts.headers)?;
        let pushed =
            crate::protocol::par::push(&p, authz, client_certificate(&p, &parts), dpop, &params)
                .await?;
        Ok(no_store(StatusCode::CREATED, &pushed))
    }
    .await;
    with_dpop_nonce(&p, proof_sent, answer)
}

/// `GET` / `POST /userinfo` (OIDC Core §5.3).
pub(crate) async fn userinfo(State(p): State<Arc<Provider>>, req: Request<Body>) -> Response {
    let proof_sent = req.headers().contains_key("dpop");
    let answer = userinfo_answer(&p, req).await;
    with_dpop_nonce(&p, proof_sent, answer)
}

async fn userinfo_answer(p: &Provider, req: Request<Body>) -> Result<Response, OAuthError> {
    let (parts, body) = req.into_parts();
    let authz = authorization(&parts.headers)?.map(str::to_owned);
    let form_params = if parts.method == Method::POST && super::request::is_form(&parts.headers) {
        Some(crate::protocol::params::Params::parse(
            &read_body(body).await?,
        )?)
    } else {
        None
    };
    let form_token = match &form_params {
        Some(params) => params.get("access_token")?,
        None => None,
    };
    let presented = ui::presented_token(authz.as_deref(), form_token)?;
    let proof = super::request::dpop_proof(&parts.headers)?;
    let certificate = client_certificate(p, &parts);
    match ui::answer(
        p,
        presented,
        proof,
        parts.method.as_str(),
        certificate.as_ref(),
    )
    .await?
    {
        ui::UserinfoResponse::Json(claims) => Ok(no_store(StatusCode::OK, &claims)),
        ui::UserinfoResponse::Signed(jwt) => Ok(no_store_jwt(jwt, "application/jwt")),
    }
}

/// `POST /introspect` (RFC 7662 §2).
pub(crate) async fn introspect(
    State(p): State<Arc<Provider>>,
    req: Request<Body>,
) -> Result<Response, OAuthError> {
    let (parts, params) = form(req, Endpoint::Introspect).await?;
    let client = introspection::caller(
        &p,
        authorization(&parts.headers)?,
        client_certificate(&p, &parts),
        &params,
    )
    .await?;
    let answer = introspection::introspect(&p, &client, &params).await?;
    let wants_jwt = parts
        .headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(INTROSPECTION_JWT))
        });
    if wants_jwt {
        return Ok(no_store_jwt(
            introspection::signed(&p, &client, answer)?,
            INTROSPECTION_JWT,
        ));
    }
    Ok(no_store(StatusCode::OK, &answer))
}

/// `POST /revoke` (RFC 7009 §2).
pub(crate) async fn revoke(
    State(p): State<Arc<Provider>>,
    req: Request<Body>,
) -> Result<Response, OAuthError> {
    let (parts, params) = form(req, Endpoint::Revoke).await?;
    let client = revocation::caller(
        &p,
        authorization(&parts.headers)?,
        client_certificate(&p, &parts),
        &params,
    )
    .await?;
    revocation::revoke(&p, &client, &params).await?;
    Ok(no_store(StatusCode::OK, &serde_json::Map::new()))
}

/// `POST /bc-authorize` (CIBA Core §7); not served without a backchannel authenticator.
pub(crate) async fn backchannel_authentication(
    State(p): State<Arc<Provider>>,
    req: Request<Body>,
) -> Result<Response, OAuthError> {
    if !p.config.backchannel_enabled {
        return Ok(StatusCode::NOT_FOUND.into_response());
    }
    let (parts, params) = form(req, Endpoint::BackchannelAuthentication).await?;
    let answer = crate::protocol::ciba::request(
        &p,
        authorization(&parts.headers)?,
        client_certificate(&p, &parts),
        &params,
    )
    .await?;
    Ok(no_store(StatusCode::OK, &answer))
}

/// Reads a JSON body (RFC 7591 §3.1: `application/json`).
async fn json_request(req: Request<Body>) -> Result<(http::request::Parts, Value), OAuthError> {
    let (parts, body) = req.into_parts();
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(OAuthError::invalid_request(
            "the body must be application/json",
        ));
    }
    let bytes = read_body(body).await?;
    let value = serde_json::from_slice(&bytes).map_err(|_| {
        OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "the body is not valid JSON",
        )
    })?;
    Ok((parts, value))
}

/// `POST /register` (RFC 7591 §3).
pub(crate) async fn register(
    State(p): State<Arc<Provider>>,
    req: Request<Body>,
) -> Result<Response, OAuthError> {
    if p.config.registration == RegistrationPolicy::Disabled {
        return Ok(StatusCode::NOT_FOUND.into_response());
    }
    let (parts, value) = json_request(req).await?;
    let client = registration::register(&p, authorization(&parts.headers)?, value).await?;
    Ok(no_store(StatusCode::CREATED, &client))
}

/// `GET`, `PUT` and `DELETE /register/{client_id}` (RFC 7592 §2).
pub(crate) async fn manage_registration(
    State(p): State<Arc<Provider>>,
    Path(client_id): Path<String>,
    req: Request<Body>,
) -> Result<Response, OAuthError> {
    if p.config.registration == RegistrationPolicy::Disabled {
        return Ok(StatusCode::NOT_FOUND.into_response());
    }
    match req.method().clone() {
        Method::GET => {
            let authz = authorization(req.headers())?;
            Ok(no_store(
                StatusCode::OK,
                &registration::read(&p, &client_id, authz).await?,
            ))
        }
        Method::PUT => {
            let (parts, value) = json_request(req).await?;
            let updated =
                registration::replace(&p, &client_id, authorization(&parts.headers)?, value)
                    .await?;
            Ok(no_store(StatusCode::OK, &updated))
        }
        Method::DELETE => {
            registration::delete(&p, &client_id, authorization(req.headers())?).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Ok(StatusCode::METHOD_NOT_ALLOWED.into_response()),
    }
}
