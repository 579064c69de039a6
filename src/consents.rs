//! What a user allowed each app (table `consents`): listed on the account page as "Apps with
//! access", and withdrawn there, which also signs out every device of that app for the user.

use diesel::Connection;

use crate::clients;
use crate::db::models::audit_events::{self, AuditEventRow};
use crate::db::models::{auth_codes, consents, users};
use crate::db::{DbConnection, StoreError};
use crate::tokens::refresh::{self, Origin, RevocationReason};

/// Withdraw a user's consent for a client: forget it, revoke the user's families of that client,
/// end its unredeemed codes and record an audit event, in one transaction. Returns the number of
/// devices signed out, or `None` when the user had no consent for that client.
pub fn withdraw(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: &str,
    origin: &Origin,
    now: i64,
) -> Result<Option<usize>, StoreError> {
    conn.transaction(|c| {
        users::lock(c, user_id)?;
        if !consents::delete(c, user_id, client_id)? {
            return Ok(None);
        }
        let of = refresh::FamiliesOf {
            user: Some(user_id),
            client: Some(client_id),
        };
        let ended = refresh::revoke_families(c, of, RevocationReason::ConsentWithdrawn, now)?;
        auth_codes::expire_unused(c, user_id, client_id, now)?;
        let name = clients::find(c, client_id)?
            .map(|cl| cl.name)
            .unwrap_or_else(|| client_id.to_string());
        let devices = match ended.count() {
            1 => "1 device".to_string(),
            n => format!("{n} devices"),
        };
        let detail = format!("access for {name} was removed; {devices} signed out");
        let event = AuditEventRow::new(now, "consent_withdrawn", detail)
            .for_user(user_id)
            .for_client(client_id)
            .from_origin(origin);
        audit_events::insert(c, &event)?;
        let revoked = ended.publish(c, Vec::new())?;
        Ok(Some(revoked.len()))
    })
}
