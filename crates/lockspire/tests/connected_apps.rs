//! The host-facing grant API and pruning of expired rows.

mod common;

use common::{Consent, Outcome, Pkce};
use lockspire::Subject;
use serde_json::json;

on_both_stores! {
    async fn users_list_and_revoke_their_authorizations(h) {
        let client = h.confidential_client(json!({})).await;
        let t = h.tokens(&client, "alice", "openid email offline_access").await;
        let alice = Subject::new("alice").expect("subject");
        let apps = h.ls.authorizations(&alice).await.expect("list");
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0].client_id, client.id);
        assert_eq!(apps[0].client_name.as_deref(), Some("Test confidential client"));
        assert_eq!(apps[0].scopes, vec!["openid", "email", "offline_access"]);
        assert!(h.ls.authorizations(&Subject::new("bob").expect("bob")).await.expect("list").is_empty());

        assert!(h.ls.revoke_authorization(&alice, &client.id).await.expect("revoke"));
        assert!(!h.is_active(&client, t["access_token"].as_str().expect("at")).await, "revoking a grant revokes its tokens");
        let r = h.post_as(&client, "/token", &[("grant_type", "refresh_token"), ("refresh_token", t["refresh_token"].as_str().expect("rt"))]).await;
        assert_eq!(r.error(), "invalid_grant");
        assert!(h.ls.authorizations(&alice).await.expect("list").is_empty());
        // Consent is asked again.
        let again = h.browser(Some("alice")).run(&h.authorize_url(&client, "openid", &Pkce::new(), &[]), &client.redirect_uri, Consent::Stop).await;
        assert!(matches!(again, Outcome::ConsentPage(..)));
        assert!(!h.ls.revoke_authorization(&alice, "no-such-client").await.expect("revoke"));
    }

    async fn expired_rows_are_pruned_and_stay_invalid(h) {
        let client = h.confidential_client(json!({})).await;
        let t = h.tokens(&client, "alice", "openid offline_access").await;
        let cc = h.post_as(&client, "/token", &[("grant_type", "client_credentials")]).await;
        assert_eq!(h.ls.prune_expired().await.expect("prune"), 0, "nothing has expired yet");
        h.clock.advance(31 * 24 * 3600);
        let removed = h.ls.prune_expired().await.expect("prune");
        assert!(removed >= 5, "code, tokens, interaction and grant removed: {removed}");
        assert!(!h.is_active(&client, t["access_token"].as_str().expect("at")).await);
        assert!(!h.is_active(&client, cc.body["access_token"].as_str().expect("cc")).await);
        let r = h.post_as(&client, "/token", &[("grant_type", "refresh_token"), ("refresh_token", t["refresh_token"].as_str().expect("rt"))]).await;
        assert_eq!(r.error(), "invalid_grant");
    }
}
