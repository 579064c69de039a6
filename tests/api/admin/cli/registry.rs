//! Clients, users and signing keys managed from the command line.

use super::*;

cli_both_backends!(
    client_create_list_show_delete,
    user_create_list_set_password_disable,
    keys_rotate_and_list,
);

fn client_create_list_show_delete(backend: Backend) {
    let Some(cli) = Cli::new(backend) else {
        return;
    };
    let created = cli.json(&[
        "client",
        "create",
        "--name",
        "billing-worker",
        "--grant",
        "client_credentials",
        "--scope",
        "invoices:read invoices:write",
        "--audience",
        "https://api.example",
        "--json",
    ]);
    let id = created["client_id"]
        .as_str()
        .expect("client_id")
        .to_string();
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "default id is a UUID: {id}"
    );
    let secret = created["client_secret"].as_str().expect("client_secret");
    assert!(
        secret.len() >= 43 && is_base64url(secret),
        "≥ 256-bit base64url secret: {secret}"
    );
    assert_eq!(created["name"], "billing-worker");
    assert_eq!(created["public"], false);
    assert_eq!(
        created["grant_types"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(
        created["scopes"],
        serde_json::json!(["invoices:read", "invoices:write"])
    );
    assert_eq!(created["audience"], "https://api.example");

    // A second client: public, with a redirect URI and default grants.
    let public = cli.json(&[
        "client",
        "create",
        "--name",
        "app",
        "--public",
        "--client-id",
        "my.app",
        "--redirect-uri",
        "http://127.0.0.1:9000/cb",
        "--scope",
        "openid",
        "--json",
    ]);
    assert_eq!(public["client_id"], "my.app");
    assert_eq!(public["client_secret"], Value::Null);
    assert_eq!(public["public"], true);
    assert_eq!(
        public["redirect_uris"],
        serde_json::json!(["http://127.0.0.1:9000/cb"])
    );

    let list = cli.json(&["client", "list", "--json"]);
    let list = list.as_array().expect("list is an array");
    assert_eq!(list.len(), 2);
    assert!(list.iter().any(|c| c["client_id"] == id.as_str()));
    for c in list {
        assert!(
            c.get("client_secret").is_none(),
            "a secret is shown only once: {c}"
        );
    }
    let shown = cli.json(&["client", "show", &id, "--json"]);
    assert_eq!(shown["client_id"], id.as_str());
    assert_eq!(shown["scopes"], created["scopes"]);
    assert!(shown.get("client_secret").is_none());
    assert!(!stdout(&cli.run(&["client", "show", &id])).contains(secret));

    let deleted = cli.json(&["client", "delete", &id, "--json"]);
    assert_eq!(deleted["client_id"], id.as_str());
    assert_eq!(deleted["deleted"], true);
    let list = cli.json(&["client", "list", "--json"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_clear_failure(&cli.run(&["client", "show", &id, "--json"]), &id);
    assert_clear_failure(&cli.run(&["client", "delete", &id]), &id);
}

#[test]
fn client_create_rejects_bad_registrations() {
    let Some(cli) = Cli::new(Backend::Sqlite) else {
        return;
    };
    let cases: &[(&[&str], &str)] = &[
        (
            &["--grant", "client_credentials", "--public", "--scope", "a"],
            "public",
        ),
        (&["--grant", "password", "--scope", "a"], "password"),
        (
            &["--grant", "authorization_code", "--scope", "a"],
            "redirect",
        ),
        (
            &[
                "--redirect-uri",
                "https://app.example/cb#frag",
                "--scope",
                "a",
            ],
            "fragment",
        ),
        (
            &["--redirect-uri", "/relative", "--scope", "a"],
            "/relative",
        ),
        (
            &["--redirect-uri", "http://app.example/cb", "--scope", "a"],
            "https",
        ),
        (&["--grant", "client_credentials"], "scope"),
        (&["--scope", "a\"b"], "scope"),
        (&["--client-id", "has space", "--scope", "a"], "client id"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["client", "create", "--name", "x", "--json"];
        args.extend_from_slice(extra);
        let out = cli.run(&args);
        assert_clear_failure(&out, expected);
        assert!(stdout(&out).is_empty(), "nothing on stdout for {extra:?}");
    }
    let list = cli.json(&["client", "list", "--json"]);
    assert_eq!(list, serde_json::json!([]), "nothing was registered");

    let args = [
        "client",
        "create",
        "--name",
        "x",
        "--client-id",
        "fixed",
        "--scope",
        "a",
        "--json",
    ];
    cli.json(&args);
    assert_clear_failure(&cli.run(&args), "already exists");
}

fn user_create_list_set_password_disable(backend: Backend) {
    let Some(cli) = Cli::new(backend) else {
        return;
    };
    let out = cli.run_stdin(
        &["user", "create", "alice", "--password-stdin", "--json"],
        "correct horse battery\n",
    );
    let alice = parse_json(&out);
    assert_eq!(alice["username"], "alice");
    assert_eq!(alice["disabled"], false);
    assert_eq!(alice["security_version"], 1);
    assert!(uuid::Uuid::parse_str(alice["id"].as_str().expect("id")).is_ok());
    let json = serde_json::to_string(&alice).expect("json");
    assert!(
        !json.contains("correct horse") && !json.contains("argon2"),
        "{json}"
    );

    let dup = cli.run_stdin(
        &["user", "create", "alice", "--password-stdin"],
        "another password\n",
    );
    assert_clear_failure(&dup, "already exists");

    let short = cli.run_stdin(&["user", "create", "bob", "--password-stdin"], "short\n");
    assert_clear_failure(&short, "too short");
    let bad_name = cli.run_stdin(
        &["user", "create", "bad name!", "--password-stdin"],
        "long enough password\n",
    );
    assert_clear_failure(&bad_name, "username");

    let users = cli.json(&["user", "list", "--json"]);
    let names: Vec<&str> = users
        .as_array()
        .expect("array")
        .iter()
        .map(|u| u["username"].as_str().expect("username"))
        .collect();
    assert_eq!(names, ["alice"]);

    let changed = parse_json(&cli.run_stdin(
        &[
            "user",
            "set-password",
            "alice",
            "--password-stdin",
            "--json",
        ],
        "a brand new password\n",
    ));
    assert_eq!(
        changed["security_version"], 2,
        "a new password bumps the security version"
    );
    assert_stored_password(
        &cli.database,
        "alice",
        "a brand new password",
        "correct horse battery",
    );
    let too_short = cli.run_stdin(
        &["user", "set-password", "alice", "--password-stdin"],
        "1234\n",
    );
    assert_clear_failure(&too_short, "too short");
    let unknown = cli.run_stdin(
        &["user", "set-password", "nobody", "--password-stdin"],
        "long enough password\n",
    );
    assert_clear_failure(&unknown, "nobody");

    let disabled = cli.json(&["user", "disable", "alice", "--json"]);
    assert_eq!(disabled["disabled"], true);
    assert_eq!(disabled["security_version"], 3);
    let users = cli.json(&["user", "list", "--json"]);
    assert_eq!(users[0]["disabled"], true);
    assert_clear_failure(&cli.run(&["user", "disable", "nobody"]), "nobody");
}

/// The stored argon2id hash accepts the new password and not the old one.
fn assert_stored_password(database: &TestDatabase, name: &str, new: &str, old: &str) {
    use lineage::domain::Password;
    let db = lineage::db::Database::open(&database.url(), &Default::default()).expect("open db");
    let name = name.to_string();
    let row = db
        .read_sync(move |c| lineage::users::get(c, &name))
        .expect("user row");
    assert!(row.password_hash.starts_with("$argon2id$"), "argon2id hash");
    let hash = Some(row.password_hash.as_str());
    assert!(lineage::users::verify_password(
        hash,
        &Password::attempt(new.into())
    ));
    assert!(!lineage::users::verify_password(
        hash,
        &Password::attempt(old.into())
    ));
}

fn keys_rotate_and_list(backend: Backend) {
    let Some(cli) = Cli::new(backend) else {
        return;
    };
    let before = cli.json(&["keys", "list", "--json"]);
    let before = before.as_array().expect("array").len();

    let first = cli.json(&["keys", "rotate", "--alg", "EdDSA", "--lead", "0", "--json"]);
    let kid = first["kid"].as_str().expect("kid");
    assert_eq!(kid.len(), 43, "a base64url SHA-256 thumbprint: {kid}");
    assert!(is_base64url(kid));
    assert_eq!(first["algorithm"], "EdDSA");
    assert_eq!(first["state"], "active");
    assert_eq!(first["activates_at"], first["created_at"]);
    assert_eq!(first["retired_at"], Value::Null);

    // The default lead (10 minutes): published now, signs later.
    let second = cli.json(&["keys", "rotate", "--alg", "EdDSA", "--json"]);
    assert_eq!(second["state"], "pending");
    let activates = second["activates_at"].as_i64().expect("activates_at");
    assert_eq!(
        activates,
        second["created_at"].as_i64().expect("created_at") + 600
    );

    let list = cli.json(&["keys", "list", "--json"]);
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), before + 2);
    let old = list
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("first key listed");
    assert_eq!(
        old["state"], "active",
        "the old key signs until the new one takes over"
    );
    assert_eq!(old["retired_at"], activates);
    assert_eq!(old["published_until"], activates + 600 + 60);
    let new = list
        .iter()
        .find(|k| k["kid"] == second["kid"])
        .expect("second key listed");
    assert_eq!(new["state"], "pending");
    let text = serde_json::to_string(&list).expect("json");
    assert!(
        !text.contains("private"),
        "no key material in the listing: {text}"
    );

    assert_clear_failure(&cli.run(&["keys", "rotate", "--lead", "soon"]), "lead");
}
