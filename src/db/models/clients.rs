use diesel::prelude::*;

use crate::db::schema::clients;
use crate::db::{DbConnection, StoreError};

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = clients)]
pub struct ClientRow {
    pub client_id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub is_public: bool,
    pub redirect_uris: String,
    pub grant_types: String,
    pub scopes: String,
    pub audience: String,
    pub first_party: bool,
    pub created_at: i64,
    /// Space-separated `Permission`s.
    pub permissions: String,
    /// `RS256` or `EdDSA` (OIDC Dynamic Client Registration §2).
    pub id_token_signed_response_alg: String,
    /// Where logout tokens go (Back-Channel Logout 1.0); none: the client is not told.
    pub backchannel_logout_uri: Option<String>,
    /// Where the browser may go after RP-initiated logout (space-separated exact URIs).
    pub post_logout_redirect_uris: String,
    /// Every token request must carry a DPoP proof (RFC 9449), so every token is bound.
    pub require_dpop: bool,
}

impl std::fmt::Debug for ClientRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRow")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("is_public", &self.is_public)
            .finish_non_exhaustive()
    }
}

pub fn insert(conn: &mut DbConnection, row: &ClientRow) -> Result<(), StoreError> {
    diesel::insert_into(clients::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<ClientRow>, StoreError> {
    Ok(clients::table
        .find(id)
        .select(ClientRow::as_select())
        .get_result(conn)
        .optional()?)
}

pub fn list(conn: &mut DbConnection) -> Result<Vec<ClientRow>, StoreError> {
    Ok(clients::table
        .order((clients::created_at.asc(), clients::client_id.asc()))
        .select(ClientRow::as_select())
        .load(conn)?)
}

/// Every client's redirect URIs (space-separated, one string per client).
pub fn all_redirect_uris(conn: &mut DbConnection) -> Result<Vec<String>, StoreError> {
    Ok(clients::table.select(clients::redirect_uris).load(conn)?)
}

pub fn all_scopes(conn: &mut DbConnection) -> Result<Vec<String>, StoreError> {
    Ok(clients::table.select(clients::scopes).load(conn)?)
}

pub fn set_secret_hash(conn: &mut DbConnection, id: &str, hash: &str) -> Result<usize, StoreError> {
    Ok(diesel::update(clients::table.find(id))
        .set(clients::secret_hash.eq(hash))
        .execute(conn)?)
}

pub fn set_permissions(
    conn: &mut DbConnection,
    id: &str,
    permissions: &str,
) -> Result<usize, StoreError> {
    Ok(diesel::update(clients::table.find(id))
        .set(clients::permissions.eq(permissions))
        .execute(conn)?)
}

pub fn set_scopes(conn: &mut DbConnection, id: &str, scopes: &str) -> Result<usize, StoreError> {
    Ok(diesel::update(clients::table.find(id))
        .set(clients::scopes.eq(scopes))
        .execute(conn)?)
}

pub fn set_id_token_alg(conn: &mut DbConnection, id: &str, alg: &str) -> Result<usize, StoreError> {
    Ok(diesel::update(clients::table.find(id))
        .set(clients::id_token_signed_response_alg.eq(alg))
        .execute(conn)?)
}

pub fn set_require_dpop(
    conn: &mut DbConnection,
    id: &str,
    required: bool,
) -> Result<usize, StoreError> {
    Ok(diesel::update(clients::table.find(id))
        .set(clients::require_dpop.eq(required))
        .execute(conn)?)
}

pub fn set_backchannel_logout_uri(
    conn: &mut DbConnection,
    id: &str,
    uri: Option<&str>,
) -> Result<usize, StoreError> {
    Ok(diesel::update(clients::table.find(id))
        .set(clients::backchannel_logout_uri.eq(uri))
        .execute(conn)?)
}

pub fn set_post_logout_redirect_uris(
    conn: &mut DbConnection,
    id: &str,
    uris: &str,
) -> Result<usize, StoreError> {
    Ok(diesel::update(clients::table.find(id))
        .set(clients::post_logout_redirect_uris.eq(uris))
        .execute(conn)?)
}

pub fn delete(conn: &mut DbConnection, id: &str) -> Result<usize, StoreError> {
    Ok(diesel::delete(clients::table.find(id)).execute(conn)?)
}
