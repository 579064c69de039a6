//! What a user allowed each app (table `consents`): listed on the account page as "Apps with
//! access", and withdrawn there, which also signs out every device of that app for the user.

use diesel::Connection;

use crate::clients;
use crate::db::models::audit_events::{self, AuditEventRow};
use crate::db::models::revocation_feed::{self, Revocation};
use crate::db::models::{auth_codes, consents, refresh_families, users};
use crate::db::{DbConnection, StoreError};
use crate::tokens::refresh::Origin;

/// The revocation reason of the families a withdrawal ends.
pub const CONSENT_WITHDRAWN: &str = "consent_withdrawn";

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
        let revoked = refresh_families::revoke_all_where(
            c,
            Some(user_id),
            Some(client_id),
            CONSENT_WITHDRAWN,
            now,
        )?;
        auth_codes::expire_unused(c, user_id, client_id, now)?;
        let name = clients::find(c, client_id)?
            .map(|cl| cl.name)
            .unwrap_or_else(|| client_id.to_string());
        let devices = match revoked.len() {
            1 => "1 device".to_string(),
            n => format!("{n} devices"),
        };
        let mut event = AuditEventRow::new(
            now,
            "consent_withdrawn",
            format!("access for {name} was removed; {devices} signed out"),
        );
        event.user_id = Some(user_id.to_string());
        event.client_id = Some(client_id.to_string());
        event.ip = origin.ip.clone();
        event.user_agent = origin.user_agent.clone();
        audit_events::insert(c, &event)?;
        // Last: publishing holds the feed's head row until the commit.
        let published: Vec<Revocation> = revoked
            .iter()
            .map(|sid| Revocation::family(sid, now))
            .collect();
        revocation_feed::publish(c, &published)?;
        Ok(Some(revoked.len()))
    })
}
