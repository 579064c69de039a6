//! `serve --demo` and OpenID Connect: the demo app may ask for the OpenID scopes and the demo
//! user has a profile, also on a database prepared before profiles existed.

use lineage::clients;
use lineage::db::models::users;

use crate::helpers::{Backend, TestApp, spawn_demo_app};

both_backends!(the_demo_app_and_user_are_ready_for_openid_connect);

/// The demo app's client and the demo user as stored.
async fn demo_state(app: &TestApp) -> (lineage::clients::Client, users::UserRow) {
    app.db
        .read(|c| {
            let client = clients::find(c, "demo-app")?.expect("demo-app exists");
            let user = users::find_by_username(c, "demo")?.expect("the demo user exists");
            Ok::<_, lineage::db::StoreError>((client, user))
        })
        .await
        .expect("read the demo client and user")
}

async fn the_demo_app_and_user_are_ready_for_openid_connect(backend: Backend) {
    let Some(app) = spawn_demo_app(backend).await else {
        return;
    };
    let (client, user) = demo_state(&app).await;
    for s in ["openid", "profile", "email", "notes:read", "notes:write"] {
        assert!(client.scopes.contains(s), "{s} in {:?}", client.scopes);
    }
    assert_eq!(user.display_name.as_deref(), Some("Demo User"));
    assert_eq!(user.email.as_deref(), Some("demo@example.com"));
    assert!(user.email_verified);

    // A database prepared by an earlier version: the demo app without the OpenID scopes (plus
    // one an operator added), the demo user without a profile. Preparing again fixes both and
    // keeps the operator's scope.
    let now = app.now();
    app.db
        .write(move |c| {
            lineage::db::models::clients::set_scopes(c, "demo-app", "notes:read notes:write x")?;
            users::set_profile(c, &user.id, None, None, false, now)?;
            Ok::<_, lineage::db::StoreError>(())
        })
        .await
        .expect("roll back to an old demo");
    lineage::demo::prepare(&app.state).await.expect("prepare");
    let (client, user) = demo_state(&app).await;
    for s in [
        "openid",
        "profile",
        "email",
        "notes:read",
        "notes:write",
        "x",
    ] {
        assert!(client.scopes.contains(s), "{s} in {:?}", client.scopes);
    }
    assert_eq!(user.display_name.as_deref(), Some("Demo User"));
}
