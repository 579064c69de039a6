//! The operator commands for refresh families, run as real processes against the server's
//! database: `token mint`, `family list`, `family revoke`, `user revoke-all`, `user disable` and
//! `gc`. What they do is checked through the running server.

use lineage::clock::{Clock, SystemClock};
use lineage::domain::Scope;
use lineage::tokens::refresh::{self, NewFamily, Origin, RefreshPolicy};
use serde_json::Value;

use crate::helpers::{
    Backend, CliDir, Fixture, assert_cli_ok, assert_inactive, assert_oauth_error, cli_json,
    cli_stderr, cli_stdout, family, family_row, feed, feed_sids, feed_subs, introspect,
    lineage_cli, refresh_ok, resource_server, verify_jwt,
};

both_backends!(
    token_mint_issues_working_families,
    token_mint_access_tokens_match_the_token_endpoint,
    family_list_and_revoke,
    user_revoke_all_and_disable,
    gc_command_removes_ended_families,
);

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn assert_cli_fails(out: &std::process::Output, expected: &str) {
    assert!(
        !out.status.success(),
        "expected a failure: {}",
        cli_stdout(out)
    );
    let err = cli_stderr(out);
    assert!(
        err.to_lowercase().contains(&expected.to_lowercase()),
        "stderr should mention `{expected}`: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

async fn token_mint_issues_working_families(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let dir = CliDir::new();
    let rs = resource_server(app).await;

    let out = lineage_cli(
        app,
        &dir,
        &[
            "token",
            "mint",
            "--user",
            "alice",
            "--client",
            &fx.client.id,
            "--scope",
            "read",
            "--device-name",
            "Pixel 9",
            "--count",
            "3",
        ],
    );
    assert_cli_ok(&out);
    let tokens: Vec<String> = cli_stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(tokens.len(), 3, "one token per line");
    for t in &tokens {
        assert!(refresh::parse_presented(t).is_some(), "a UUID: {t}");
        let r = fx.rotate(t).await;
        assert_eq!(r.scope, "read");
        assert_eq!(r.claims["sub"], fx.user.id.as_str());
        let row = family(app, r.claims["sid"].as_str().expect("sid")).await;
        assert_eq!(row.device_name.as_deref(), Some("Pixel 9"));
        assert_eq!(row.rotation_count, 1);
    }

    // --json: one object per line with an access token signed by the server's key; the user may
    // be named by id too, and the scope defaults to everything the client may ask for.
    let lines = json_lines(&cli_stdout(&{
        let out = lineage_cli(
            app,
            &dir,
            &[
                "token",
                "mint",
                "--user",
                &fx.user.id,
                "--client",
                &fx.client.id,
                "--count",
                "2",
                "--json",
            ],
        );
        assert_cli_ok(&out);
        out
    }));
    assert_eq!(lines.len(), 2);
    // The CLI read the system clock: bring the server's clock up to it, so the minted access
    // tokens are not "not yet valid" for it.
    app.clock.set(app.now().max(SystemClock.now()));
    let jwks = app.jwks().await;
    for line in &lines {
        let family_id = line["family_id"].as_str().expect("family_id");
        let access = line["access_token"].as_str().expect("access_token");
        let claims = verify_jwt(access, &jwks)
            .unwrap_or_else(|e| panic!("minted access token: {e}"))
            .claims;
        assert_eq!(claims["sid"], family_id);
        assert_eq!(claims["iss"], app.issuer);
        assert_eq!(claims["scope"], "admin read write");
        assert_eq!(introspect(app, &rs, access).await["active"], true);
        let r = fx
            .rotate(line["refresh_token"].as_str().expect("refresh_token"))
            .await;
        assert_eq!(r.claims["sid"], family_id);
    }

    // Refusals: unknown user, a client without the refresh grant, a scope beyond the client's.
    let service = app.create_client("read").await;
    for (args, expected) in [
        (
            vec!["--user", "nobody", "--client", fx.client.id.as_str()],
            "nobody",
        ),
        (
            vec!["--user", "alice", "--client", service.id.as_str()],
            "refresh_token",
        ),
        (
            vec![
                "--user",
                "alice",
                "--client",
                fx.client.id.as_str(),
                "--scope",
                "root",
            ],
            "scope",
        ),
    ] {
        let mut all = vec!["token", "mint"];
        all.extend(args);
        let out = lineage_cli(app, &dir, &all);
        assert_cli_fails(&out, expected);
        assert!(cli_stdout(&out).is_empty());
    }
}

/// `token mint --json` and `/token` build access tokens with one constructor: the same header,
/// the same claim names, issuer, audience and lifetime, for the same user, client and family.
async fn token_mint_access_tokens_match_the_token_endpoint(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let dir = CliDir::new();
    let out = lineage_cli(
        app,
        &dir,
        &[
            "token",
            "mint",
            "--user",
            "alice",
            "--client",
            &fx.client.id,
            "--json",
        ],
    );
    assert_cli_ok(&out);
    let line = json_lines(&cli_stdout(&out)).remove(0);
    // The CLI read the system clock: bring the server's clock up to it.
    app.clock.set(app.now().max(SystemClock.now()));
    let jwks = app.jwks().await;
    let minted = verify_jwt(line["access_token"].as_str().expect("access_token"), &jwks)
        .unwrap_or_else(|e| panic!("minted access token: {e}"));
    let refreshed = fx
        .rotate(line["refresh_token"].as_str().expect("refresh_token"))
        .await;
    let served = verify_jwt(&refreshed.access_token, &jwks)
        .unwrap_or_else(|e| panic!("served access token: {e}"));

    assert_eq!(minted.header, served.header, "alg, typ and kid");
    let names = |claims: &Value| {
        let mut names: Vec<String> = claims
            .as_object()
            .expect("claims are an object")
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&minted.claims), names(&served.claims));
    for claim in [
        "iss",
        "sub",
        "aud",
        "client_id",
        "scope",
        "sid",
        "preferred_username",
    ] {
        assert_eq!(minted.claims[claim], served.claims[claim], "{claim}");
    }
    assert_eq!(minted.claims["iss"], app.issuer);
    let lifetime = |c: &Value| c["exp"].as_i64().unwrap_or(0) - c["iat"].as_i64().unwrap_or(0);
    assert_eq!(lifetime(&minted.claims), lifetime(&served.claims));
    assert_ne!(minted.claims["jti"], served.claims["jti"]);
}

async fn family_list_and_revoke(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let dir = CliDir::new();
    let (a, ta) = fx.start().await;
    let (b, tb) = fx.start().await;
    let tb = fx.rotate(&tb).await.refresh_token;

    let list = cli_json(app, &dir, &["family", "list", "--user", "alice", "--json"]);
    let list = list.as_array().expect("an array");
    assert_eq!(list.len(), 2);
    for f in list {
        assert_eq!(f["state"], "live", "{f}");
        assert_eq!(f["client_id"], fx.client.id.as_str());
        assert_eq!(f["user_id"], fx.user.id.as_str());
        assert_eq!(f["device_name"], "test device");
        let expected_rotations = if f["id"] == b.as_str() { 1 } else { 0 };
        assert_eq!(f["rotation_count"], expected_rotations, "{f}");
    }
    let by_id = cli_json(
        app,
        &dir,
        &["family", "list", "--user", &fx.user.id, "--json"],
    );
    assert_eq!(by_id.as_array().map(Vec::len), Some(2));
    let human = lineage_cli(app, &dir, &["family", "list", "--user", "alice"]);
    assert_cli_ok(&human);
    assert!(cli_stdout(&human).contains(&a), "{}", cli_stdout(&human));

    let revoked = cli_json(app, &dir, &["family", "revoke", &a, "--json"]);
    assert_eq!(
        revoked,
        serde_json::json!({"family_id": a, "revoked": true})
    );
    let row = family(app, &a).await;
    assert_eq!(row.revoked_reason.as_deref(), Some("revoked_by_admin"));
    let resp = fx.refresh(&ta).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    let (_, _, body) = feed(app, None, None).await;
    assert_eq!(feed_sids(&body.expect("feed")), vec![a.clone()]);

    // Listed as ended; the other family is untouched.
    let list = cli_json(app, &dir, &["family", "list", "--user", "alice", "--json"]);
    for f in list.as_array().expect("an array") {
        let state = f["state"].as_str().expect("state");
        if f["id"] == a.as_str() {
            assert!(state.contains("administrator"), "{state}");
        } else {
            assert_eq!(state, "live");
        }
    }
    fx.rotate(&tb).await;

    // Again: nothing to do. Unknown: a clear failure.
    let again = cli_json(app, &dir, &["family", "revoke", &a, "--json"]);
    assert_eq!(again["revoked"], false);
    let missing = uuid::Uuid::new_v4().to_string();
    assert_cli_fails(
        &lineage_cli(app, &dir, &["family", "revoke", &missing]),
        &missing,
    );
    assert_cli_fails(
        &lineage_cli(app, &dir, &["family", "list", "--user", "nobody"]),
        "nobody",
    );
}

async fn user_revoke_all_and_disable(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let dir = CliDir::new();
    let rs = resource_server(app).await;
    let (a, ta) = fx.start().await;
    let (b, tb) = fx.start().await;
    let ra = fx.rotate(&ta).await;

    let out = cli_json(app, &dir, &["user", "revoke-all", "alice", "--json"]);
    assert_eq!(out["username"], "alice");
    let mut ended: Vec<String> = out["revoked_families"]
        .as_array()
        .expect("revoked_families")
        .iter()
        .map(|v| v.as_str().expect("id").to_string())
        .collect();
    ended.sort();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(ended, expected);
    for t in [&ra.refresh_token, &tb] {
        let resp = fx.refresh(t).await;
        assert_oauth_error(resp, 400, "invalid_grant").await;
    }
    assert_inactive(
        &introspect(app, &rs, &ra.access_token).await,
        "after revoke-all",
    );
    assert_eq!(
        family(app, &a).await.revoked_reason.as_deref(),
        Some("revoked_by_admin")
    );
    let (_, _, body) = feed(app, None, None).await;
    assert_eq!(feed_subs(&body.expect("feed")), vec![fx.user.id.clone()]);

    // `user disable`: a new family stops refreshing, and its access token stops introspecting.
    let (c, tc) = fx.start().await;
    let rc = fx.rotate(&tc).await;
    let out = lineage_cli(app, &dir, &["user", "disable", "alice", "--json"]);
    assert_cli_ok(&out);
    let resp = fx.refresh(&rc.refresh_token).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    assert_inactive(
        &introspect(app, &rs, &rc.access_token).await,
        "a disabled user's token",
    );
    assert_eq!(
        family(app, &c).await.revoked_reason.as_deref(),
        Some("user_disabled")
    );
    // And no new family can be minted for a disabled user.
    let out = lineage_cli(
        app,
        &dir,
        &[
            "token",
            "mint",
            "--user",
            "alice",
            "--client",
            &fx.client.id,
        ],
    );
    assert_cli_fails(&out, "disabled");
    // Enabled again, a freshly minted family works.
    assert_cli_ok(&lineage_cli(app, &dir, &["user", "enable", "alice"]));
    let out = lineage_cli(
        app,
        &dir,
        &[
            "token",
            "mint",
            "--user",
            "alice",
            "--client",
            &fx.client.id,
        ],
    );
    assert_cli_ok(&out);
    refresh_ok(app, &fx.client, cli_stdout(&out).trim()).await;
}

async fn gc_command_removes_ended_families(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let dir = CliDir::new();
    // The CLI reads the system clock: a family that ended ten days ago is long past retention.
    let long_ago = app.now() - 10 * 86_400;
    let (policy, uid, cid) = (
        RefreshPolicy::from_settings(&app.settings),
        fx.user.id.clone(),
        fx.client.id.clone(),
    );
    let old = app
        .db
        .write(move |c| {
            let spec = NewFamily {
                user_id: uid,
                client_id: cid,
                scope: Scope::parse("read").expect("scope"),
                device_name: None,
                origin: Origin::default(),
                dpop_jkt: None,
            };
            let (f, _) = refresh::start_family(c, spec, &policy, long_ago)?;
            refresh::revoke_family(
                c,
                &f.id,
                lineage::tokens::refresh::RevocationReason::RevokedByAdmin,
                &Origin::default(),
                long_ago,
            )?;
            Ok::<_, lineage::db::StoreError>(f.id)
        })
        .await
        .expect("an old, ended family");
    let (live, live_token) = fx.start().await;

    let report = cli_json(app, &dir, &["gc", "--json"]);
    assert_eq!(report["families"], 1, "{report}");
    assert_eq!(report["refresh_tokens"], 1, "{report}");
    assert_eq!(report["audit_events"], 0, "{report}");
    assert!(family_row(app, &old).await.is_none());
    assert!(family_row(app, &live).await.is_some());
    fx.rotate(&live_token).await;

    let again = cli_json(app, &dir, &["gc", "--json"]);
    assert_eq!(again["families"], 0, "{again}");
    let human = lineage_cli(app, &dir, &["gc"]);
    assert_cli_ok(&human);
    assert!(
        cli_stdout(&human).contains("deleted 0 families"),
        "{}",
        cli_stdout(&human)
    );
}
