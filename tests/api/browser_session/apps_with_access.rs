//! "Apps with access" on the account page: every app the user allowed, with its scopes in words,
//! when it was allowed and its devices, and "Remove access", which withdraws the consent, signs
//! out every device of that app for the user, and makes the app ask again.

use reqwest::StatusCode;

use crate::helpers::{
    APP_NAME, APP_REDIRECT, Backend, CliDir, PASSWORD, Page, app_client,
    assert_html_security_headers, cli_json, code_request, create_user, exchange,
    expect_invalid_grant, expect_tokens, family, lineage_cli, parse_redirect, pkce, refresh,
    signed_in_tokens, spawn_app, tokens_in, web_app_client,
};

both_backends!(
    account_page_lists_the_apps_with_access,
    remove_access_signs_out_the_apps_devices_and_asks_again,
    a_user_cannot_remove_another_users_app,
);

fn remove_path(client_id: &str) -> String {
    format!("/account/apps/{client_id}/remove")
}

/// The text of the "Apps with access" entry of `client_id`.
fn app_entry(page: &Page, client_id: &str) -> Option<String> {
    let marker = format!("data-client=\"{client_id}\"");
    let rest = &page.body[page.body.find(&marker)? + marker.len()..];
    let end = [rest.find("data-client="), rest.find("</section>")]
        .into_iter()
        .flatten()
        .min()?;
    let entry = Page {
        status: page.status,
        headers: page.headers.clone(),
        body: format!("<li {}", &rest[..end]),
        url: page.url.clone(),
    };
    Some(entry.text())
}

async fn account_page_lists_the_apps_with_access(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let notes = app_client(&app, "notes:read notes:write").await;
    let web = web_app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    create_user(&app, "bob").await;
    let (b, _) = signed_in_tokens(
        &app,
        &notes,
        "notes:read notes:write",
        "alice",
        "Alice's laptop",
    )
    .await;
    // A second device of the same app (through the one-click confirmation).
    let (_, _) = signed_in_tokens(&app, &notes, "notes:read", "alice", "ignored").await;
    // The web app: allowed, but no device yet.
    let page = b
        .get(&code_request(
            &web.id,
            "https://web.example/cb",
            "notes:read",
            &pkce(),
        ))
        .await;
    b.decide(&page, "allow", None).await;
    // Bob's app is not Alice's business.
    let bob_app = crate::helpers::register(
        &app,
        lineage::clients::NewClient {
            name: "Bob's own tool".into(),
            ..crate::helpers::app_spec("notes:read")
        },
    )
    .await;
    signed_in_tokens(&app, &bob_app, "notes:read", "bob", "Bob's desktop").await;

    let page = b.get("/account").await;
    assert_eq!(page.status, 200, "{}", page.describe());
    assert_html_security_headers(&page);
    let text = page.text();
    assert!(text.contains("Apps with access"), "{text}");
    assert!(!text.contains("Bob's own tool"), "{text}");
    assert!(page.form(&remove_path(&bob_app.id)).is_none());

    let entry = app_entry(&page, &notes.id).expect("the notes app is listed");
    for expected in [
        APP_NAME,
        "Read your notes",
        "Create and change your notes",
        "Alice's laptop",
        "Chrome on Linux",
    ] {
        assert!(entry.contains(expected), "{expected:?} in {entry}");
    }
    let today = lineage::web::format_time(app.now());
    assert!(entry.contains(&format!("Allowed {today}")), "{entry}");

    let entry = app_entry(&page, &web.id).expect("the web app is listed");
    assert!(
        entry.contains("Web dashboard") && entry.contains("Read your notes"),
        "{entry}"
    );
    assert!(!entry.contains("Alice's laptop"), "{entry}");
    assert!(entry.contains("No device"), "{entry}");

    for client in [&notes.id, &web.id] {
        let form = page
            .form(&remove_path(client))
            .expect("a Remove access form");
        assert_eq!(
            form.tag
                .attr("method")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("post")
        );
        assert!(form.value("csrf_token").is_some_and(|t| !t.is_empty()));
        assert!(form.html.contains("Remove access"));
    }
}

async fn remove_access_signs_out_the_apps_devices_and_asks_again(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let notes = app_client(&app, "notes:read").await;
    let other = crate::helpers::register(
        &app,
        lineage::clients::NewClient {
            name: "Other app".into(),
            ..crate::helpers::app_spec("notes:read")
        },
    )
    .await;
    let alice_id = create_user(&app, "alice").await.id;
    let (b, laptop) = signed_in_tokens(&app, &notes, "notes:read", "alice", "Laptop").await;
    let phone = tokens_in(&app, &app.browser(), &notes, "notes:read", "alice", "x").await;
    let kept = tokens_in(&app, &b, &other, "notes:read", "alice", "Other device").await;
    // A code approved just before the removal, not yet redeemed by the app.
    let p = pkce();
    let pending = b
        .get(&code_request(&notes.id, APP_REDIRECT, "notes:read", &p))
        .await;
    let pending = b.decide(&pending, "allow", None).await;
    let pending_code = parse_redirect(pending.location().expect("Location"))
        .get("code")
        .expect("code")
        .to_string();

    let action = remove_path(&notes.id);
    let csrf = b
        .get("/account")
        .await
        .form(&action)
        .and_then(|f| f.value("csrf_token"))
        .expect("remove form");
    // Without the CSRF token: refused, nothing changes.
    let resp = b.post(&action, &[]).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.describe());
    assert!(family(&app, &laptop.sid()).await.revoked_at.is_none());

    let resp = b.post(&action, &[("csrf_token", &csrf)]).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.describe());
    let page = b.follow(resp).await;
    assert_eq!(page.status, 200, "{}", page.describe());
    let text = page.text();
    assert!(text.contains("access was removed"), "a notice: {text}");
    assert!(page.form(&action).is_none(), "no longer listed");
    assert!(
        page.form(&remove_path(&other.id)).is_some(),
        "the other app stays"
    );
    assert!(
        text.contains(&format!(
            "Access for {APP_NAME} was removed; 2 devices signed out"
        )),
        "a security event: {text}"
    );
    assert!(
        !text.contains("Laptop"),
        "its devices are gone from the list: {text}"
    );

    // Every device of the app is signed out, with the reason recorded and told.
    for tokens in [&laptop, &phone] {
        let f = family(&app, &tokens.sid()).await;
        assert_eq!(f.revoked_reason.as_deref(), Some("consent_withdrawn"));
        let resp = refresh(&app, &notes.id, &tokens.refresh_token).await;
        let body: serde_json::Value = resp.json().await.expect("JSON");
        assert_eq!(body["error"], "invalid_grant", "{body}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap_or("")
                .contains("removed the app's access"),
            "{body}"
        );
    }
    // The code approved before is dead too; the other app keeps working.
    expect_invalid_grant(
        exchange(
            &app,
            &notes.id,
            &pending_code,
            APP_REDIRECT,
            Some(&p.verifier),
        )
        .await,
        "a code approved before the consent was withdrawn",
    )
    .await;
    expect_tokens(refresh(&app, &other.id, &kept.refresh_token).await).await;
    // Resource servers learn of the revocations from the feed.
    let sids = crate::helpers::feed_sids(&crate::helpers::feed_json(&app).await);
    assert!(sids.contains(&laptop.sid()) && sids.contains(&phone.sid()));
    // `lineage family list` gives the reason in words.
    let dir = CliDir::new();
    let list = cli_json(&app, &dir, &["family", "list", "--user", "alice", "--json"]);
    let state = list
        .as_array()
        .expect("array")
        .iter()
        .find(|f| f["id"] == laptop.sid().as_str())
        .and_then(|f| f["state"].as_str())
        .expect("the laptop's family")
        .to_string();
    assert!(state.contains("removed the app's access"), "{state}");
    let human = lineage_cli(&app, &dir, &["family", "list", "--user", &alice_id]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("removed the app's access"));

    // The next authorization request shows the consent page again (not the confirmation).
    let page = b
        .get(&code_request(
            &notes.id,
            APP_REDIRECT,
            "notes:read",
            &pkce(),
        ))
        .await;
    assert_eq!(page.status, 200, "{}", page.describe());
    assert!(
        page.input("device_name").is_some(),
        "the consent page: {}",
        page.text()
    );
    // Removing again: nothing to remove.
    let resp = b.post(&action, &[("csrf_token", &csrf)]).await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND, "{}", resp.describe());
}

async fn a_user_cannot_remove_another_users_app(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let notes = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    create_user(&app, "mallory").await;
    let (alice, tokens) = signed_in_tokens(&app, &notes, "notes:read", "alice", "laptop").await;
    let mallory = app.browser();
    mallory.sign_in("mallory", PASSWORD).await;
    let csrf = mallory.account_csrf().await;

    let resp = mallory
        .post(&remove_path(&notes.id), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND, "{}", resp.describe());
    assert_html_security_headers(&resp);
    // Unknown app: the same 404 page.
    let resp = mallory
        .post(&remove_path("no-such-app"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND, "{}", resp.describe());
    assert!(resp.header("content-type").starts_with("text/html"));
    // Alice's consent and device are untouched.
    assert!(family(&app, &tokens.sid()).await.revoked_at.is_none());
    expect_tokens(refresh(&app, &notes.id, &tokens.refresh_token).await).await;
    let page = alice
        .get(&code_request(
            &notes.id,
            APP_REDIRECT,
            "notes:read",
            &pkce(),
        ))
        .await;
    assert!(page.text().contains("Continue to"), "{}", page.text());
    // Signed out, the form sends the browser to sign in.
    let anonymous = app.browser();
    let resp = anonymous
        .post(&remove_path(&notes.id), &[("csrf_token", "x")])
        .await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.describe());
    assert!(resp.location().unwrap_or("").starts_with("/login"));
}
