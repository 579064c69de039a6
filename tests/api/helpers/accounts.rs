//! Users and clients, registered through the library as the operator's commands do: every test
//! user has `PASSWORD`; clients come as `NewClient` specs to adjust, or registered in one call.

use lineage::clients::{self, NewClient};
use lineage::domain::{GrantType, Password, Permission, RedirectUri, Scope, Username};

use super::app::TestApp;
use super::flow::{APP_NAME, APP_REDIRECT};

/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery staple";

/// A user created by `create_user`.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub username: String,
}

/// The stored form of `password`, computed before any database job (as the server does).
fn hash(password: &str) -> lineage::users::HashedPassword {
    let password = Password::new(password.to_string()).expect("a valid password");
    lineage::users::hash_password(&password).expect("hashing")
}

/// Create a user with `PASSWORD` through the library (hashed first, then written).
pub async fn create_user(app: &TestApp, name: &str) -> TestUser {
    create_user_with(app, name, PASSWORD).await
}

pub async fn create_user_with(app: &TestApp, name: &str, password: &str) -> TestUser {
    let (name, now) = (name.to_string(), app.now());
    let hash = hash(password);
    let username = Username::parse(&name).expect("a valid username");
    let view = app
        .db
        .write(move |c| lineage::users::create(c, &username, &hash, now))
        .await
        .expect("user creation");
    TestUser {
        id: view.id,
        username: view.username,
    }
}

/// `lineage user set-password NAME` (the library call behind it).
pub async fn set_password(app: &TestApp, name: &str, password: &str) {
    let (name, now) = (name.to_string(), app.now());
    let hash = hash(password);
    app.db
        .write(move |c| lineage::users::set_password(c, &name, &hash, now))
        .await
        .expect("set_password");
}

/// `lineage user disable NAME` / `enable`.
pub async fn set_disabled(app: &TestApp, name: &str, disabled: bool) {
    let (name, now) = (name.to_string(), app.now());
    app.db
        .write(move |c| lineage::users::set_disabled(c, &name, disabled, now))
        .await
        .expect("set_disabled");
}

/// A confidential client's credentials.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: String,
}

/// Register a client through the library, as `lineage client create` does.
pub async fn register(app: &TestApp, spec: NewClient) -> TestClient {
    let now = app.now();
    let created = app
        .db
        .write(move |c| clients::create(c, spec, now))
        .await
        .expect("client registration");
    TestClient {
        id: created.client.client_id.to_string(),
        secret: created
            .client_secret
            .as_ref()
            .map(|s| s.expose().to_string())
            .unwrap_or_default(),
    }
}

impl TestApp {
    pub async fn create_client_with(&self, spec: NewClient) -> TestClient {
        register(self, spec).await
    }

    /// A confidential client_credentials client allowed `scopes`.
    pub async fn create_client(&self, scopes: &str) -> TestClient {
        self.create_client_with(service_client(scopes)).await
    }

    pub async fn delete_client(&self, client_id: &str) {
        let id = client_id.to_string();
        let now = self.now();
        self.db
            .read(move |c| clients::delete(c, &id, now))
            .await
            .expect("client deletion");
    }
}

/// What `create_client` registers unless told otherwise: confidential, client_credentials only.
pub fn service_client(scopes: &str) -> NewClient {
    NewClient {
        client_id: None,
        name: "test service".into(),
        public: false,
        grant_types: vec![GrantType::ClientCredentials],
        scopes: Scope::parse(scopes).expect("valid scopes"),
        redirect_uris: vec![],
        audience: Some("https://api.example".into()),
        first_party: false,
    }
}

/// A confidential web-app client that may not use client_credentials.
pub fn web_client(scopes: &str) -> NewClient {
    NewClient {
        grant_types: vec![GrantType::AuthorizationCode],
        redirect_uris: vec![RedirectUri::parse("https://app.example/cb").expect("redirect uri")],
        ..service_client(scopes)
    }
}

/// A confidential web client allowed authorization_code and refresh_token.
pub fn refresh_client_spec(scopes: &str) -> NewClient {
    NewClient {
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        redirect_uris: vec![RedirectUri::parse("https://app.example/cb").expect("redirect uri")],
        ..service_client(scopes)
    }
}

pub async fn refresh_client(app: &TestApp, scopes: &str) -> TestClient {
    app.create_client_with(refresh_client_spec(scopes)).await
}

/// A public (native app) client allowed the refresh_token grant; its `secret` is empty.
pub async fn public_client(app: &TestApp, scopes: &str) -> TestClient {
    app.create_client_with(NewClient {
        public: true,
        ..refresh_client_spec(scopes)
    })
    .await
}

/// A resource server: a confidential client_credentials client that only introspects.
pub async fn resource_server(app: &TestApp) -> TestClient {
    app.create_client("introspect").await
}

/// A public native app (PKCE required) with a loopback redirect URI and refresh tokens.
pub fn app_spec(scopes: &str) -> NewClient {
    NewClient {
        client_id: None,
        name: APP_NAME.into(),
        public: true,
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: Scope::parse(scopes).expect("valid scopes"),
        redirect_uris: vec![RedirectUri::parse(APP_REDIRECT).expect("redirect uri")],
        audience: Some("https://notes.example".into()),
        first_party: false,
    }
}

pub async fn app_client(app: &TestApp, scopes: &str) -> TestClient {
    register(app, app_spec(scopes)).await
}

/// The registered redirect URI of `web_app_client`.
pub const WEB_REDIRECT: &str = "https://web.example/cb";

/// A confidential web app at `WEB_REDIRECT` (PKCE optional, enforced if sent).
pub async fn web_app_client(app: &TestApp, scopes: &str) -> TestClient {
    register(
        app,
        NewClient {
            name: "Web dashboard".into(),
            public: false,
            redirect_uris: vec![RedirectUri::parse(WEB_REDIRECT).expect("uri")],
            ..app_spec(scopes)
        },
    )
    .await
}

/// The id of the resource server `feed_reader` registers.
pub const FEED_READER: &str = "feed-reader";

const FEED_READER_SECRET: &str = "feed-reader-secret-for-tests";

/// A resource server allowed to read the revocation feed (registered on first use).
pub async fn feed_reader(app: &TestApp) -> TestClient {
    let now = app.now();
    app.db
        .write(move |c| {
            if lineage::clients::find(c, FEED_READER)?.is_none() {
                let spec = NewClient {
                    client_id: Some(FEED_READER.into()),
                    name: "resource server".into(),
                    ..service_client("feed")
                };
                lineage::clients::create_with_permissions(
                    c,
                    spec,
                    &[Permission::Revocations],
                    now,
                )?;
                let secret = lineage::tokens::secret::PlainToken::new(FEED_READER_SECRET);
                lineage::clients::set_secret(c, FEED_READER, &secret)?;
            }
            Ok::<_, lineage::clients::RegistryError>(())
        })
        .await
        .expect("register the feed reader");
    TestClient {
        id: FEED_READER.into(),
        secret: FEED_READER_SECRET.into(),
    }
}
