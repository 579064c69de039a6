//! Families end with their user's standing: a disabled user cannot refresh and their access tokens
//! stop introspecting as active; a password change revokes every family of the user and publishes
//! the user's not-before in the revocation feed; deleting a client ends its families.

use diesel::prelude::*;
use lineage::domain::Password;

use crate::helpers::{
    Backend, FAMILY_SCOPE, Fixture, TestApp, assert_inactive, assert_oauth_error, create_user,
    family, feed, feed_sids, feed_subs, introspect, refresh_as, refresh_client, refresh_ok,
    resource_server, start_family, unused_count,
};

both_backends!(
    disabling_a_user_ends_their_families_and_tokens,
    a_disabled_user_cannot_refresh_even_a_live_family,
    password_change_revokes_every_family_and_publishes_not_before,
    deleting_the_client_ends_its_families,
);

async fn set_disabled(app: &TestApp, username: &str, disabled: bool) {
    let (name, now) = (username.to_string(), app.now());
    app.db
        .write(move |c| lineage::users::set_disabled(c, &name, disabled, now))
        .await
        .expect("set_disabled");
}

async fn disabling_a_user_ends_their_families_and_tokens(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let rs = resource_server(app).await;
    let second_client = refresh_client(app, FAMILY_SCOPE).await;
    let bob = create_user(app, "bob").await;
    let (id_a, ta) = fx.start().await;
    let (id_b, tb) = start_family(app, &fx.user.id, &second_client.id, "read").await;
    let (id_bob, t_bob) = fx.start_for(&bob.id).await;
    let a = fx.rotate(&ta).await;
    let b = refresh_ok(app, &second_client, &tb).await;
    assert_eq!(introspect(app, &rs, &a.access_token).await["active"], true);

    app.clock.advance(3);
    set_disabled(app, &fx.user.username, true).await;
    let disabled_at = app.now();

    for (client, token) in [
        (&fx.client, &a.refresh_token),
        (&second_client, &b.refresh_token),
    ] {
        let resp = refresh_as(app, client, token, None).await;
        assert_oauth_error(resp, 400, "invalid_grant").await;
        assert_inactive(
            &introspect(app, client, token).await,
            "a disabled user's refresh token",
        );
    }
    for at in [&a.access_token, &b.access_token] {
        assert_inactive(
            &introspect(app, &rs, at).await,
            "a disabled user's access token",
        );
    }
    for id in [&id_a, &id_b] {
        let row = family(app, id).await;
        assert_eq!(row.revoked_reason.as_deref(), Some("user_disabled"));
        assert_eq!(row.revoked_at, Some(disabled_at));
    }
    let (_, _, body) = feed(app, None, None).await;
    let body = body.expect("feed body");
    let mut sids = feed_sids(&body);
    sids.sort();
    let mut expected = vec![id_a.clone(), id_b.clone()];
    expected.sort();
    assert_eq!(sids, expected);
    assert_eq!(feed_subs(&body), vec![fx.user.id.clone()]);
    assert_eq!(body["users"][0]["not_before"], disabled_at);

    // Another user is untouched.
    assert_eq!(family(app, &id_bob).await.revoked_at, None);
    fx.rotate(&t_bob).await;

    // Enabling the user again does not bring the ended families back.
    app.clock.advance(1);
    set_disabled(app, &fx.user.username, false).await;
    let resp = fx.refresh(&a.refresh_token).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    // A new family (a new sign-in) works.
    let (_, fresh) = fx.start().await;
    fx.rotate(&fresh).await;
}

async fn a_disabled_user_cannot_refresh_even_a_live_family(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let rs = resource_server(app).await;
    let (id, t0) = fx.start().await;
    let r = fx.rotate(&t0).await;
    // Only the flag, as another writer might leave it: the family itself is not revoked.
    let (uid, now) = (fx.user.id.clone(), app.now());
    app.db
        .write(move |c| lineage::db::models::users::set_disabled(c, &uid, true, now))
        .await
        .expect("flag the user disabled");

    let resp = fx.refresh(&r.refresh_token).await;
    let body = assert_oauth_error(resp, 400, "invalid_grant").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("disabled"),
        "{body}"
    );
    assert_inactive(
        &introspect(app, &rs, &r.access_token).await,
        "a disabled user's access token",
    );
    assert_inactive(
        &introspect(app, &fx.client, &r.refresh_token).await,
        "a disabled user's refresh token",
    );
    assert_eq!(unused_count(app, &id).await, 1, "nothing spent");

    // The claims are read at each refresh: once enabled, the same token works again.
    let (uid, now) = (fx.user.id.clone(), app.now());
    app.db
        .write(move |c| lineage::db::models::users::set_disabled(c, &uid, false, now))
        .await
        .expect("enable the user");
    let next = fx.rotate(&r.refresh_token).await;
    assert_eq!(next.claims["preferred_username"], fx.user.username.as_str());
}

async fn password_change_revokes_every_family_and_publishes_not_before(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let rs = resource_server(app).await;
    let bob = create_user(app, "bob").await;
    let (id1, t1) = fx.start().await;
    let (id2, t2) = fx.start().await;
    let (id_bob, t_bob) = fx.start_for(&bob.id).await;
    let r1 = fx.rotate(&t1).await;
    let bob_r = fx.rotate(&t_bob).await;

    app.clock.advance(10);
    let (name, now) = (fx.user.username.clone(), app.now());
    let pw = Password::new("a brand new password".into()).expect("valid");
    let hash = lineage::users::hash_password(&pw).expect("hash");
    app.db
        .write(move |c| lineage::users::set_password(c, &name, &hash, now))
        .await
        .expect("set_password");
    let changed_at = app.now();

    for (id, token) in [(&id1, &r1.refresh_token), (&id2, &t2)] {
        let row = family(app, id).await;
        assert_eq!(row.revoked_reason.as_deref(), Some("password_changed"));
        assert_eq!(row.revoked_at, Some(changed_at));
        let resp = fx.refresh(token).await;
        assert_oauth_error(resp, 400, "invalid_grant").await;
    }
    assert_inactive(
        &introspect(app, &rs, &r1.access_token).await,
        "after a password change",
    );

    let (_, _, body) = feed(app, None, None).await;
    let body = body.expect("feed body");
    assert_eq!(feed_subs(&body), vec![fx.user.id.clone()]);
    assert_eq!(body["users"][0]["not_before"], changed_at);
    let sids = feed_sids(&body);
    assert!(sids.contains(&id1) && sids.contains(&id2), "{body}");
    assert!(!sids.contains(&id_bob), "{body}");
    let not_before: i64 = {
        let uid = fx.user.id.clone();
        app.db
            .read(move |c| {
                use lineage::db::schema::users::dsl as u;
                Ok::<_, lineage::db::StoreError>(
                    u::users
                        .filter(u::id.eq(uid))
                        .select(u::not_before)
                        .first::<Option<i64>>(c)?,
                )
            })
            .await
            .expect("read not_before")
            .expect("not_before is set")
    };
    assert_eq!(not_before, changed_at);

    // Bob is untouched.
    assert_eq!(family(app, &id_bob).await.revoked_at, None);
    assert_eq!(
        introspect(app, &rs, &bob_r.access_token).await["active"],
        true
    );
    fx.rotate(&bob_r.refresh_token).await;

    // A sign-in after the change starts a family whose tokens are good.
    app.clock.advance(1);
    let (_, fresh) = fx.start().await;
    let r = fx.rotate(&fresh).await;
    assert_eq!(introspect(app, &rs, &r.access_token).await["active"], true);
}

async fn deleting_the_client_ends_its_families(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let rs = resource_server(app).await;
    let doomed = refresh_client(app, FAMILY_SCOPE).await;
    let (id, t0) = start_family(app, &fx.user.id, &doomed.id, FAMILY_SCOPE).await;
    let r = refresh_ok(app, &doomed, &t0).await;
    let (kept_id, kept) = fx.start().await;

    app.delete_client(&doomed.id).await;
    let row = family(app, &id).await;
    assert_eq!(row.revoked_reason.as_deref(), Some("client_deleted"));
    let resp = refresh_as(app, &doomed, &r.refresh_token, None).await;
    assert_oauth_error(resp, 401, "invalid_client").await;
    assert_inactive(
        &introspect(app, &rs, &r.access_token).await,
        "a deleted client's token",
    );
    let (_, _, body) = feed(app, None, None).await;
    assert_eq!(feed_sids(&body.expect("feed body")), vec![id]);

    assert_eq!(family(app, &kept_id).await.revoked_at, None);
    fx.rotate(&kept).await;
}
