//! The display name on `/account`: a CSRF-protected form, validated, escaped; email read-only.

use lineage::domain::Email;
use lineage::profile::ProfileChange;

use super::Oidc;
use crate::helpers::{Backend, PASSWORD, assert_html_security_headers, spawn_app};

both_backends!(
    a_user_sets_and_clears_their_display_name,
    a_bad_display_name_is_shown_on_the_page
);

async fn a_user_sets_and_clears_their_display_name(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let oidc = Oidc::new(app).await;
    oidc.update_profile(ProfileChange {
        email: Some(Some(Email::parse("alice@example.com").unwrap())),
        ..ProfileChange::default()
    })
    .await;
    let browser = oidc.app.browser();
    browser.sign_in("alice", PASSWORD).await;
    let page = browser.get("/account").await;
    assert_eq!(page.status, 200);
    assert_html_security_headers(&page);
    let form = page.form("/account/profile").expect("a profile form");
    assert!(form.value("csrf_token").is_some());
    // The address is shown, but is not a field the form sends.
    assert!(page.contains("alice@example.com"), "{}", page.describe());
    assert!(page.contains("Not verified"), "{}", page.describe());
    assert!(page.contains("Only an administrator can change your email address"));
    assert!(
        !form
            .inputs()
            .iter()
            .any(|i| i.attr("name") == Some("email"))
    );

    // Without the CSRF token nothing changes.
    let refused = browser
        .post("/account/profile", &[("display_name", "Mallory")])
        .await;
    assert_eq!(refused.status, 400, "{}", refused.describe());

    let csrf = browser.account_csrf().await;
    let name = "  <b>Alice</b> & co  ";
    let saved = browser
        .post(
            "/account/profile",
            &[("csrf_token", &csrf), ("display_name", name)],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.describe());
    assert_eq!(saved.location(), Some("/account?done=profile"));
    let page = browser.get("/account?done=profile").await;
    assert!(
        page.contains("Your profile was saved"),
        "{}",
        page.describe()
    );
    // Trimmed, and escaped in the page: the markup is text in the field, never markup.
    let form = page.form("/account/profile").expect("a profile form");
    assert_eq!(
        form.value("display_name").as_deref(),
        Some("<b>Alice</b> & co")
    );
    assert!(!page.body.contains("<b>Alice</b>"), "{}", page.body);
    let token = oidc.access_token("openid profile").await;
    let claims = crate::helpers::jwt_claims(&token);
    assert_eq!(claims["name"], "<b>Alice</b> & co");

    // An empty field clears it.
    let csrf = browser.account_csrf().await;
    let cleared = browser
        .post(
            "/account/profile",
            &[("csrf_token", &csrf), ("display_name", "   ")],
        )
        .await;
    assert_eq!(cleared.status, 303, "{}", cleared.describe());
    let token = oidc.access_token("openid profile").await;
    assert!(crate::helpers::jwt_claims(&token).get("name").is_none());
    // The operator's address was not touched by the user's form.
    let claims = crate::helpers::jwt_claims(&oidc.access_token("openid email").await);
    assert_eq!(claims["email"], "alice@example.com");
}

async fn a_bad_display_name_is_shown_on_the_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let oidc = Oidc::new(app).await;
    let browser = oidc.app.browser();
    browser.sign_in("alice", PASSWORD).await;
    let too_long = "x".repeat(101);
    for (bad, why) in [
        (too_long.as_str(), "too long"),
        ("Alice\u{7}", "control characters"),
    ] {
        let csrf = browser.account_csrf().await;
        let page = browser
            .post(
                "/account/profile",
                &[("csrf_token", &csrf), ("display_name", bad)],
            )
            .await;
        assert_eq!(page.status, 400, "{}", page.describe());
        assert!(page.contains(why), "{why}: {}", page.describe());
        assert_html_security_headers(&page);
    }
    let token = oidc.access_token("openid profile").await;
    assert!(crate::helpers::jwt_claims(&token).get("name").is_none());
}
