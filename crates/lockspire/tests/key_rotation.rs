//! Signing key lifecycle: upcoming → active → retiring → retired.

mod common;

use std::time::Duration;

use lockspire::jose::SigningAlg;
use lockspire::{KeyState, OperatorError, PUBLISH_BEFORE_USE};
use serde_json::{Value, json};

async fn jwks_kids(base: &str) -> Vec<String> {
    let jwks: Value = reqwest::get(format!("{base}/jwks"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn jwt_token(h: &common::Harness, client: &common::TestClient) -> String {
    let r = h
        .post_as(client, "/token", &[("grant_type", "client_credentials")])
        .await;
    r.body["access_token"].as_str().expect("at").to_owned()
}

on_both_stores! {
    async fn rotation_publishes_before_use_and_keeps_old_tokens_verifiable(h) {
        let op = h.ls.operator();
        let client = h.confidential_client(json!({"access_token_format": "jwt"})).await;
        let before = jwt_token(&h, &client).await;
        let old_kid = common::jwt_parts(&before).0["kid"].as_str().expect("kid").to_owned();

        let new = op.generate_key(SigningAlg::ES256).await.expect("generate");
        assert!(matches!(new.state, KeyState::Upcoming { .. }));
        assert!(jwks_kids(&h.base).await.contains(&new.kid), "an upcoming key is published");
        assert_eq!(common::jwt_parts(&jwt_token(&h, &client).await).0["kid"], old_kid.as_str(), "but does not sign yet");

        let early = op.activate_key(&new.kid).await;
        assert!(matches!(early, Err(OperatorError::Refused(_))), "published too briefly: {early:?}");
        h.clock.advance(PUBLISH_BEFORE_USE + 1);
        op.activate_key(&new.kid).await.expect("activate");

        let after = jwt_token(&h, &client).await;
        assert_eq!(common::jwt_parts(&after).0["kid"], new.kid.as_str(), "new tokens use the new key");
        common::verify_with_jwks(&h, &after, &h.base).await;
        // A token signed before the rotation still verifies against the published JWKS.
        let keys = op.keys().await.expect("keys");
        let old = keys.iter().find(|k| k.kid == old_kid).expect("old key listed");
        let KeyState::Retiring { until } = old.state else { panic!("old key retiring: {old:?}") };
        assert!(jwks_kids(&h.base).await.contains(&old_kid));
        assert_eq!(common::jwt_parts(&before).0["kid"], old_kid.as_str());

        // It leaves JWKS only once its grace time has passed.
        let now = lockspire::Clock::now(&h.clock);
        h.clock.advance(until - now - 10);
        op.reload_keys().await.expect("reload");
        assert!(jwks_kids(&h.base).await.contains(&old_kid), "still inside the grace time");
        h.clock.advance(11);
        op.reload_keys().await.expect("reload");
        assert!(!jwks_kids(&h.base).await.contains(&old_kid), "gone after the grace time");
        assert!(matches!(op.keys().await.expect("keys").iter().find(|k| k.kid == old_kid).map(|k| k.state), Some(KeyState::Retired)));
    }

    async fn the_last_active_key_of_an_alg_cannot_retire(h) {
        let op = h.ls.operator();
        let active = op.keys().await.expect("keys").into_iter().find(|k| k.alg == "RS256" && k.state == KeyState::Active).expect("RS256 key");
        let refused = op.retire_key(&active.kid).await;
        assert!(matches!(refused, Err(OperatorError::Refused(_))), "{refused:?}");
        assert!(matches!(op.retire_key("no-such-kid").await, Err(OperatorError::NotFound(_))));
        // An upcoming key can be withdrawn before use.
        let upcoming = op.generate_key(SigningAlg::RS256).await.expect("generate");
        op.retire_key(&upcoming.kid).await.expect("retire upcoming");
    }

    async fn a_key_rotated_through_one_process_is_used_by_another_within_the_refresh_interval(h) {
        let (second, _ls2) = h.second_server().await;
        let op = h.ls.operator();
        let new = op.generate_key(SigningAlg::ES256).await.expect("generate");
        h.clock.advance(PUBLISH_BEFORE_USE + 1);
        op.activate_key(&new.kid).await.expect("activate");
        let client = h.confidential_client(json!({"access_token_format": "jwt"})).await;
        let signing_kid = || async {
            let r = reqwest::Client::new().post(format!("{second}/token")).basic_auth(&client.id, client.secret.as_deref())
                .form(&[("grant_type", "client_credentials")]).send().await.expect("token");
            let body: Value = r.json().await.expect("json");
            common::jwt_parts(body["access_token"].as_str().expect("at")).0["kid"].as_str().unwrap_or_default().to_owned()
        };
        // Polled, within a deadline well past the other process's refresh interval (200 ms).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while signing_kid().await != new.kid {
            assert!(std::time::Instant::now() < deadline, "used for signing by the other process");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(jwks_kids(&second).await.contains(&new.kid), "and published by it");
    }

    async fn operators_manage_clients_and_rotate_secrets(h) {
        let op = h.ls.operator();
        let client = h.confidential_client(json!({})).await;
        assert!(op.clients().await.expect("list").iter().any(|c| c.client_id == client.id));
        let new_secret = op.rotate_client_secret(&client.id).await.expect("rotate");
        let old = h.post_as(&client, "/token", &[("grant_type", "client_credentials")]).await;
        assert_eq!(old.error(), "invalid_client", "the old secret stops working");
        let mut rotated = client.clone();
        rotated.secret = Some(new_secret);
        assert_eq!(h.post_as(&rotated, "/token", &[("grant_type", "client_credentials")]).await.status, 200);
        let public = h.public_client(json!({})).await;
        assert!(matches!(op.rotate_client_secret(&public.id).await, Err(OperatorError::Refused(_))));
        op.set_client_enabled(&client.id, false).await.expect("disable");
        assert!(!op.client(&client.id).await.expect("show").expect("exists").enabled);
    }
}
