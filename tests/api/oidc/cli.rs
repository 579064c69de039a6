//! The operator's profile commands: `user create`/`update`/`show`/`list` with profile flags, and
//! OpenID scopes on `client create`.

use crate::helpers::{
    Backend, CliDir, assert_cli_ok, cli_json, cli_stderr, cli_stdout, cli_with_stdin, lineage_cli,
    spawn_app,
};

both_backends!(
    operators_set_profiles_from_the_command_line,
    bad_profile_values_are_refused,
    clients_may_be_registered_for_openid_scopes
);

async fn operators_set_profiles_from_the_command_line(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let dir = CliDir::new();
    let created = cli_with_stdin(
        &dir,
        &app.database,
        &[
            "user",
            "create",
            "alice",
            "--password-stdin",
            "--display-name",
            "Alice Liddell",
            "--email",
            "alice@example.com",
            "--json",
        ],
        "correct horse battery staple\n",
    );
    let created: serde_json::Value = serde_json::from_str(&created).expect("JSON");
    assert_eq!(created["display_name"], "Alice Liddell");
    assert_eq!(created["email"], "alice@example.com");
    assert_eq!(created["email_verified"], false);

    let verified = cli_json(
        &app,
        &dir,
        &[
            "user",
            "update",
            "alice",
            "--email-verified",
            "true",
            "--json",
        ],
    );
    assert_eq!(verified["email_verified"], true);
    assert_eq!(verified["display_name"], "Alice Liddell");

    // A new address is unverified again unless the operator says otherwise.
    let moved = cli_json(
        &app,
        &dir,
        &[
            "user",
            "update",
            "alice",
            "--email",
            "alice@example.org",
            "--json",
        ],
    );
    assert_eq!(moved["email"], "alice@example.org");
    assert_eq!(moved["email_verified"], false);

    let cleared = cli_json(
        &app,
        &dir,
        &["user", "update", "alice", "--clear-display-name", "--json"],
    );
    assert!(cleared["display_name"].is_null(), "{cleared}");

    let shown = cli_json(&app, &dir, &["user", "show", "alice", "--json"]);
    assert_eq!(shown["email"], "alice@example.org");
    assert!(shown["display_name"].is_null());
    let text = lineage_cli(&app, &dir, &["user", "show", "alice"]);
    assert_cli_ok(&text);
    assert!(
        cli_stdout(&text).contains("alice@example.org (not verified)"),
        "{}",
        cli_stdout(&text)
    );
    let list = cli_json(&app, &dir, &["user", "list", "--json"]);
    assert_eq!(list[0]["email"], "alice@example.org");
    let listed = lineage_cli(&app, &dir, &["user", "list"]);
    assert!(cli_stdout(&listed).contains("<alice@example.org>"));
}

async fn bad_profile_values_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let dir = CliDir::new();
    crate::helpers::create_user(&app, "alice").await;
    for (args, expected) in [
        (
            vec!["--email", "not an address"],
            "not a valid email address",
        ),
        (vec!["--display-name", "   "], "display name is empty"),
        (
            vec!["--email-verified", "true"],
            "no email address to mark as verified",
        ),
        (vec!["--email-verified", "maybe"], "invalid value"),
        (
            vec!["--email", "a@b.c", "--clear-email"],
            "cannot be used with",
        ),
        (vec![], "nothing to change"),
    ] {
        let mut all = vec!["user", "update", "alice", "--json"];
        all.extend(args.iter().copied());
        let out = lineage_cli(&app, &dir, &all);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            cli_stderr(&out).contains(expected),
            "{args:?}: {}",
            cli_stderr(&out)
        );
        assert!(cli_stdout(&out).is_empty());
    }
    let unknown = lineage_cli(&app, &dir, &["user", "update", "nobody", "--clear-email"]);
    assert_eq!(unknown.status.code(), Some(1));
    let shown = cli_json(&app, &dir, &["user", "show", "alice", "--json"]);
    assert!(
        shown["email"].is_null() && shown["display_name"].is_null(),
        "{shown}"
    );
}

async fn clients_may_be_registered_for_openid_scopes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let dir = CliDir::new();
    let client = cli_json(
        &app,
        &dir,
        &[
            "client",
            "create",
            "--name",
            "oidc app",
            "--grant",
            "authorization_code,refresh_token",
            "--redirect-uri",
            "https://rp.example/cb",
            "--scope",
            "openid profile email",
            "--json",
        ],
    );
    let scopes = client["scopes"].as_array().expect("scopes");
    for s in ["openid", "profile", "email"] {
        assert!(scopes.contains(&s.into()), "{s} in {client}");
    }
}
