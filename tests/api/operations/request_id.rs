//! `X-Request-Id`: a short visible-ASCII id a caller sends is echoed and becomes the request's
//! id in the logs; anything else, or none, is replaced by a generated one.

use reqwest::header::HeaderValue;

use crate::helpers::{Backend, basic_auth, spawn_app};

both_backends!(a_sane_request_id_is_echoed_and_any_other_replaced);

fn is_generated_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn a_sane_request_id_is_echoed_and_any_other_replaced(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("read").await;
    let send = |path: &'static str, id: Option<HeaderValue>| {
        let mut req = app
            .api
            .post(app.url(path))
            .header("Authorization", basic_auth(&client.id, &client.secret))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials");
        if let Some(id) = id {
            req = req.header("X-Request-Id", id);
        }
        async move {
            let resp = req.send().await.expect("POST");
            let status = resp.status().as_u16();
            let echoed = resp.headers().get_all("x-request-id").iter().count();
            let id = resp.headers()["x-request-id"]
                .to_str()
                .expect("ASCII")
                .to_string();
            assert_eq!(echoed, 1, "exactly one X-Request-Id");
            (status, id)
        }
    };
    // Given and sane: echoed as is, on success, on errors and on unknown paths.
    let given = "req-7f3a_9.B:2=x/+";
    for path in ["/token", "/revoke", "/no-such-page"] {
        let (status, id) = send(path, Some(HeaderValue::from_static(given))).await;
        assert_eq!(id, given, "{path} answered {status}");
    }
    let longest = "a".repeat(64);
    let (_, id) = send(
        "/token",
        Some(HeaderValue::from_str(&longest).expect("header")),
    )
    .await;
    assert_eq!(id, longest);

    // None given: a fresh one each time.
    let (status, a) = send("/token", None).await;
    let (_, b) = send("/token", None).await;
    assert_eq!(status, 200);
    assert!(
        is_generated_id(&a) && is_generated_id(&b) && a != b,
        "{a} {b}"
    );

    // Too long, not ASCII, with spaces or empty: replaced by a generated one.
    for bad in [
        HeaderValue::from_str(&"a".repeat(65)).expect("header"),
        HeaderValue::from_bytes(b"caf\xe9-request").expect("header"),
        HeaderValue::from_static("two words"),
        HeaderValue::from_static(""),
    ] {
        let (_, id) = send("/token", Some(bad.clone())).await;
        assert!(is_generated_id(&id), "{bad:?} became {id}");
    }
}
