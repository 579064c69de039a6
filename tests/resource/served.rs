//! The example API against lineage: scopes, RFC 6750 refusals, key rotation, revocations
//! through the feed.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_api_accepts_lineage_tokens_and_enforces_scopes() {
    let lineage = spawn_lineage().await;
    let client = lineage
        .create_client(service_client("notes:read notes:write", AUDIENCE))
        .await;
    let api = spawn_api(lineage.validator(None).await).await;

    let health = api
        .send(api.http.get(format!("{}/healthz", api.base)), None)
        .await;
    assert_eq!(health.status, 200);

    let anonymous = api
        .send(api.http.get(format!("{}/notes", api.base)), None)
        .await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.challenge,
        r#"Bearer realm="notes-api", DPoP realm="notes-api", algs="ES256 EdDSA""#
    );

    let reader = lineage
        .client_credentials(&client, Some("notes:read"))
        .await;
    let listed = api.list(&reader).await;
    assert_eq!((listed.status, listed.body.clone()), (200, json!([])));
    let refused = api.create(Some(&reader), "hello").await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(
        refused.challenge.contains(r#"error="insufficient_scope""#),
        "{refused:?}"
    );
    assert!(
        refused.challenge.ends_with(r#"scope="notes:write""#),
        "{refused:?}"
    );

    let writer = lineage.client_credentials(&client, None).await;
    let created = api.create(Some(&writer), "buy milk").await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(
        created.body["author"],
        client.id.as_str(),
        "client_credentials: sub is the client"
    );
    let listed = api.list(&reader).await;
    assert_eq!(listed.body[0]["text"], "buy milk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_misdirected_tokens_are_refused_per_rfc_6750() {
    let lineage = spawn_lineage().await;
    let notes = lineage
        .create_client(service_client("notes:read", AUDIENCE))
        .await;
    let billing = lineage
        .create_client(service_client("notes:read", "billing-api"))
        .await;
    let validator = lineage.validator(None).await;
    let api = spawn_api(validator.clone()).await;
    let key = lineage.signing_key().await;
    let now = lineage.now();
    let good = lineage.client_credentials(&notes, None).await;
    assert_eq!(api.list(&good).await.status, 200);

    // Signed by the server's real key, shaped wrong.
    let mut c = lineage.claims("user-1");
    c.exp = now - 30;
    c.iat = now - 630;
    c.nbf = now - 630;
    api.list(&lineage.mint(&c).await)
        .await
        .assert_invalid_token("the access token expired");

    let mut c = lineage.claims("user-1");
    c.nbf = now + 120;
    api.list(&lineage.mint(&c).await)
        .await
        .assert_invalid_token("not valid yet");

    let mut c = lineage.claims("user-1");
    c.iss = "http://evil.example".into();
    api.list(&lineage.mint(&c).await)
        .await
        .assert_invalid_token("another authorization server");

    // A genuine lineage token for another API.
    let for_billing = lineage.client_credentials(&billing, None).await;
    api.list(&for_billing)
        .await
        .assert_invalid_token("another audience");

    // typ JWT (e.g. an ID token), same key and claims.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.typ = Some("JWT".into());
    header.kid = Some(key.kid.clone());
    let id_token = jsonwebtoken::encode(&header, &lineage.claims("user-1"), &key.encoding).unwrap();
    api.list(&id_token)
        .await
        .assert_invalid_token("typ must be at+jwt");

    // RS256 by the server's own RSA key (published in the same JWKS for ID tokens), shaped as an
    // access token in every other way: access tokens are EdDSA only.
    let rsa = {
        let keys = lineage.state.keys.current(&lineage.state.db, now).await;
        keys.active_for(KeyAlgorithm::RS256, now)
            .cloned()
            .expect("an active RSA key")
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(rsa.kid.clone());
    let rs256 = jsonwebtoken::encode(&header, &lineage.claims("user-1"), &rsa.encoding).unwrap();
    api.list(&rs256)
        .await
        .assert_invalid_token("alg RS256 is not accepted");

    // alg none, unsigned.
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&lineage.claims("user-1")).unwrap());
    let none_header = json!({"alg": "none", "typ": "at+jwt", "kid": key.kid});
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(none_header.to_string())
    );
    api.list(&none)
        .await
        .assert_invalid_token("alg none is not accepted");

    // Key confusion: HS256 keyed with the public key bytes the JWKS publishes.
    let hs_header = json!({"alg": "HS256", "typ": "at+jwt", "kid": key.kid});
    let input = format!(
        "{}.{payload}",
        URL_SAFE_NO_PAD.encode(hs_header.to_string())
    );
    let PublicJwk::Okp { x } = &key.public else {
        panic!("the access-token key is Ed25519")
    };
    let public = URL_SAFE_NO_PAD.decode(x).unwrap();
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &public),
        input.as_bytes(),
    );
    let hs256 = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
    api.list(&hs256)
        .await
        .assert_invalid_token("alg HS256 is not accepted");

    // A stranger's Ed25519 key: under its own kid, and under ours.
    let stranger = Ed25519KeyPair::from_pkcs8(
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .unwrap()
            .as_ref(),
    )
    .unwrap();
    for (kid, description) in [
        ("stranger", "signed by an unknown key"),
        (key.kid.as_str(), "signature is invalid"),
    ] {
        let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid});
        let input = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header.to_string()));
        let forged = format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(stranger.sign(input.as_bytes()).as_ref())
        );
        api.list(&forged).await.assert_invalid_token(description);
    }

    // A genuine token with a widened scope pasted in.
    let parts: Vec<&str> = good.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["scope"] = json!("notes:read notes:write");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    api.list(&tampered)
        .await
        .assert_invalid_token("signature is invalid");
    let write = api.create(Some(&tampered), "sneaky").await;
    assert_eq!(write.status, 401, "{write:?}");

    // Forged key ids did not make the API hammer lineage: the JWKS was read once, at start.
    assert_eq!(validator.key_ids(), vec![key.kid.clone()]);

    // And the genuine token, once its time is up.
    lineage.clock.advance(600 + 10);
    api.list(&good)
        .await
        .assert_invalid_token("the access token expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_on_the_server_is_picked_up_without_restarting_the_api() {
    let lineage = spawn_lineage().await;
    let client = lineage
        .create_client(service_client("notes:read", AUDIENCE))
        .await;
    let validator = lineage.validator(None).await;
    let api = spawn_api(validator.clone()).await;

    let old = lineage.client_credentials(&client, None).await;
    let old_kid = kid_of(&old);
    assert_eq!(api.list(&old).await.status, 200);
    assert_eq!(validator.key_ids(), vec![old_kid.clone()]);

    let (secret, now) = (lineage.settings.key_secret.clone(), lineage.now());
    let rotated = lineage
        .state
        .db
        .write(move |c| {
            let secret = secret.load()?;
            keys::rotate(
                c,
                &KeyEncryption::new(&secret),
                KeyAlgorithm::EdDSA,
                now,
                Seconds::ZERO,
            )
        })
        .await
        .unwrap();
    // The server re-reads its keys every KEY_RELOAD_SECONDS of its clock.
    lineage.clock.advance(KEY_RELOAD_SECONDS + 1);

    let new = lineage.client_credentials(&client, None).await;
    assert_eq!(kid_of(&new), rotated.kid);
    assert_ne!(rotated.kid, old_kid);
    assert_eq!(
        api.list(&new).await.status,
        200,
        "the new kid is fetched on first sight"
    );
    assert_eq!(
        api.list(&old).await.status,
        200,
        "tokens of the retired key live on until expiry"
    );
    let mut both = vec![old_kid, rotated.kid.clone()];
    both.sort();
    assert_eq!(validator.key_ids(), both);

    // Past the old token's expiry (plus leeway), only it is refused.
    let old_exp = validator.validate(&old).await.unwrap().exp;
    lineage.clock.set(old_exp + 10);
    api.list(&old).await.assert_invalid_token("expired");
    assert_eq!(api.list(&new).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_is_refused_after_the_next_feed_poll() {
    let lineage = spawn_lineage().await;
    let user = lineage.create_user("alice").await;
    let client = lineage
        .create_client(web_client("notes:read notes:write"))
        .await;
    let laptop = lineage.start_family(&user, &client, "laptop").await;
    let phone = lineage.start_family(&user, &client, "phone").await;
    let (laptop_access, laptop_refresh) = lineage.refresh(&client, &laptop).await;
    let (phone_access, _) = lineage.refresh(&client, &phone).await;

    // Polling in the background only hourly: this test polls by hand.
    let validator = lineage.validator(Some(Duration::from_secs(3600))).await;
    let api = spawn_api(validator.clone()).await;
    let laptop_claims = validator.validate(&laptop_access).await.unwrap();
    let sid = laptop_claims
        .sid
        .clone()
        .expect("refresh-issued tokens carry sid");
    assert_eq!(laptop_claims.sub, user);
    assert_eq!(laptop_claims.extra_str("preferred_username"), Some("alice"));
    assert_eq!(api.list(&laptop_access).await.status, 200);

    let revoked = lineage
        .post_form(
            "/revoke",
            &client,
            &[
                ("token", &laptop_refresh),
                ("token_type_hint", "refresh_token"),
            ],
        )
        .await;
    assert_eq!(revoked.status(), 200);
    let reader = lineage.feed_reader().await;
    let feed: Value = lineage
        .api
        .get(lineage.url("/revocations"))
        .header("Authorization", basic(&reader))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(feed["families"][0]["sid"], sid.as_str(), "{feed}");

    // Until the next poll the API has not heard of it (the documented lag: one poll interval).
    assert_eq!(api.list(&laptop_access).await.status, 200);
    let outcome = validator.poll_revocations().await.unwrap();
    assert_eq!(outcome, updated(1, 0, 0));
    api.list(&laptop_access)
        .await
        .assert_invalid_token("session was revoked");
    assert_eq!(
        api.list(&phone_access).await.status,
        200,
        "other devices are unaffected"
    );

    // Nothing new: one small page from the new cursor, then the ETag makes polls bodiless 304s.
    assert_eq!(
        validator.poll_revocations().await.unwrap(),
        updated(0, 0, 0)
    );
    assert_eq!(
        validator.poll_revocations().await.unwrap(),
        PollOutcome::NotModified
    );
    let status = validator.revocation_status().unwrap();
    assert_eq!(
        (status.revoked_families, status.last_success),
        (1, Some(lineage.now()))
    );

    // Memory stays bounded: once no token of the family can be alive (the retention the feed
    // states, plus the validator's 10 s leeway), the entry is dropped.
    assert_eq!(status.retention, Some(600 + 60));
    lineage.clock.advance(600 + 60 + 10 + 1);
    validator.poll_revocations().await.unwrap();
    assert_eq!(validator.revocation_status().unwrap().revoked_families, 0);
}

fn updated(families: usize, access_tokens: usize, clients: usize) -> PollOutcome {
    PollOutcome::Updated {
        families,
        users: 0,
        access_tokens,
        clients,
        pages: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_access_token_and_a_deleted_client_are_refused_by_the_api() {
    let lineage = spawn_lineage().await;
    let user = lineage.create_user("dora").await;
    let app = lineage
        .create_client(web_client("notes:read notes:write"))
        .await;
    let family = lineage.start_family(&user, &app, "laptop").await;
    let (revoked_access, next) = lineage.refresh(&app, &family).await;
    let (other_access, _) = lineage.refresh(&app, &next).await;
    let service = lineage
        .create_client(service_client("notes:read", AUDIENCE))
        .await;
    let service_token = lineage.client_credentials(&service, None).await;

    let validator = lineage.validator(Some(Duration::from_secs(3600))).await;
    let api = spawn_api(validator.clone()).await;
    for token in [&revoked_access, &other_access, &service_token] {
        assert_eq!(api.list(token).await.status, 200);
    }

    // RFC 7009 revocation of one access token reaches the API through the feed's jti list.
    let resp = lineage
        .post_form("/revoke", &app, &[("token", &revoked_access)])
        .await;
    assert_eq!(resp.status(), 200);
    lineage.clock.advance(1);
    // Deleting a client ends its client_credentials tokens too: the feed's client list.
    let (id, now) = (service.id.clone(), lineage.now());
    lineage
        .state
        .db
        .write(move |c| {
            clients::delete(c, &id, now).map_err(|e| StoreError::Other(anyhow::anyhow!("{e}")))
        })
        .await
        .unwrap();
    assert_eq!(
        validator.poll_revocations().await.unwrap(),
        updated(0, 1, 1)
    );
    api.list(&revoked_access)
        .await
        .assert_invalid_token("the access token was revoked");
    api.list(&service_token)
        .await
        .assert_invalid_token("client was deleted");
    assert_eq!(
        api.list(&other_access).await.status,
        200,
        "the family's newer token is unaffected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_everywhere_reaches_the_api_through_the_background_poller() {
    let lineage = spawn_lineage().await;
    let user = lineage.create_user("bob").await;
    let client = lineage
        .create_client(web_client("notes:read notes:write"))
        .await;
    let family = lineage.start_family(&user, &client, "tablet").await;
    let (access, _) = lineage.refresh(&client, &family).await;
    // A token for the user outside any family (sid absent): only the user's not-before catches it.
    let mut claims = lineage.claims(&user);
    claims.client_id = client.id.clone();
    let familyless = lineage.mint(&claims).await;

    let validator = lineage.validator(Some(Duration::from_millis(200))).await;
    let api = spawn_api(validator.clone()).await;
    assert_eq!(api.list(&access).await.status, 200);
    assert_eq!(api.list(&familyless).await.status, 200);

    // What a password change or "sign out everywhere" does: every family ends, not-before = now.
    lineage.clock.advance(2);
    let (user_id, now) = (user.clone(), lineage.now());
    lineage
        .state
        .db
        .write(move |c| {
            refresh::revoke_all_for_user(
                c,
                &user_id,
                lineage::tokens::refresh::RevocationReason::PasswordChanged,
                now,
            )
        })
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    while api.list(&familyless).await.status == 200 {
        assert!(
            Instant::now() < deadline,
            "the background poll never delivered the revocation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api.list(&familyless)
        .await
        .assert_invalid_token("issued before the user's sessions were revoked");
    api.list(&access)
        .await
        .assert_invalid_token("session was revoked");
    // A token issued after the change is fine.
    let mut fresh = lineage.claims(&user);
    fresh.client_id = client.id.clone();
    assert_eq!(api.list(&lineage.mint(&fresh).await).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_feed_leaves_signature_and_expiry_checks_in_force() {
    let lineage = spawn_lineage().await;
    let user = lineage.create_user("carol").await;
    let client = lineage.create_client(web_client("notes:read")).await;
    let family = lineage.start_family(&user, &client, "laptop").await;
    let (access, next) = lineage.refresh(&client, &family).await;

    let clock = lineage.clock.clone();
    let validator = Validator::builder(&lineage.issuer)
        .audience(AUDIENCE)
        .clock(move || clock.now())
        // Port 9 (discard) is closed here: the feed cannot be read.
        .revocations_uri("http://127.0.0.1:9/revocations")
        .revocation_poll(Some(Duration::from_secs(3600)))
        .build()
        .await
        .expect("an unreachable feed does not stop the API from starting");
    let api = spawn_api(validator.clone()).await;
    assert!(validator.poll_revocations().await.is_err());
    assert_eq!(validator.revocation_status().unwrap().last_success, None);

    // Availability over freshness: the revoked token still works until it expires…
    let revoked = lineage
        .post_form("/revoke", &client, &[("token", &next)])
        .await;
    assert_eq!(revoked.status(), 200);
    assert_eq!(api.list(&access).await.status, 200);
    // …but forgeries and expired tokens are refused as ever.
    let (input, signature) = access.rsplit_once('.').unwrap();
    let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    signature[0] ^= 1;
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));
    api.list(&forged)
        .await
        .assert_invalid_token("signature is invalid");
    lineage.clock.advance(600 + 10);
    api.list(&access).await.assert_invalid_token("expired");
}
